"""The 17 RegMix-Data domains (the Pile without its copyrighted subsets) and their token prior.

The prior is the fraction of the corpus's tokens each domain holds; the mixture sampler tempers
it and the regression's candidate search draws around it. One place, so every module agrees on
the names and their order.
"""

from __future__ import annotations

# Token fractions from RegMix's synthesize_mixture.py, in descending order of size.
TOKEN_PRIOR: dict[str, float] = {
    "pile_cc": 0.236869207,
    "pubmed_central": 0.185375901,
    "arxiv": 0.113285273,
    "github": 0.101750772,
    "freelaw": 0.079608651,
    "stackexchange": 0.066529351,
    "wikipedia_en": 0.051081359,
    "uspto_backgrounds": 0.046446962,
    "pubmed_abstracts": 0.038825953,
    "gutenberg_pg_19": 0.027085479,
    "dm_mathematics": 0.015962925,
    "ubuntu_irc": 0.01184346,
    "hackernews": 0.008032956,
    "europarl": 0.007929969,
    "nih_exporter": 0.003913491,
    "philpapers": 0.003707518,
    "enron_emails": 0.001750772,
}

DOMAINS: tuple[str, ...] = tuple(TOKEN_PRIOR)

# The order RegMix's own files list the domains in (train_config.yaml, the release CSVs).
# Writers use it so that what we publish reads like what RegMix published.
REGMIX_ORDER: tuple[str, ...] = (
    "arxiv", "freelaw", "nih_exporter", "pubmed_central", "wikipedia_en", "dm_mathematics",
    "github", "philpapers", "stackexchange", "enron_emails", "gutenberg_pg_19", "pile_cc",
    "ubuntu_irc", "europarl", "hackernews", "pubmed_abstracts", "uspto_backgrounds",
)

# The regression target of the paper: validation loss on Pile-CC.
TARGET_DOMAIN = "pile_cc"

TRAIN_KEY_PREFIX = "train_the_pile_"
VALID_KEY_PREFIX = "valid_the_pile_"


def train_key(domain: str) -> str:
    return TRAIN_KEY_PREFIX + domain


def valid_key(domain: str) -> str:
    return VALID_KEY_PREFIX + domain


def loss_column(domain: str) -> str:
    """Column name of a domain's validation loss, as in RegMix's released loss tables."""
    return f"metric/the_pile_{domain}_val_loss"


def check_domain(name: str, field: str = "domain") -> str:
    if name not in TOKEN_PRIOR:
        raise ValueError(f"{field}: unknown domain {name!r}; known domains: {', '.join(DOMAINS)}")
    return name


assert set(DOMAINS) == set(REGMIX_ORDER) and len(DOMAINS) == 17
