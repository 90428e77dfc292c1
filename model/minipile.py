"""mini-pile: a small synthetic stand-in for RegMix-Data, generated offline from a seed.

Each of the 17 domains has its own vocabulary, sentence templates and document structure, and
all of them share English function words. pile_cc is generic web text that also borrows
sentences from a few other domains, so its validation loss depends on the whole mixture, not only
on its own weight. Domain sizes follow TOKEN_PRIOR (whitespace words stand in for tokens).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from pathlib import Path
from typing import Callable

from .corpus import encode_documents
from .domains import DOMAINS, TOKEN_PRIOR
from .io import atomic_dir, atomic_write_bytes, atomic_write_json

GENERATOR_VERSION = 1
DEFAULT_TRAIN_TOKENS = 4_000_000  # whitespace words over all domains
DEFAULT_VALID_DOCS = 150  # per domain: >= ~16k tokens each, even for the shortest documents (enron)
MIN_TRAIN_DOCS = 12
WORDS_PER_SHARD = 300_000
MAX_SHARDS = 4

Rng = random.Random


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("|") if p.strip())


def _zipf_cum_weights(n: int, exponent: float = 1.0) -> list[float]:
    total, cum = 0.0, []
    for rank in range(n):
        total += 1.0 / (rank + 1) ** exponent
        cum.append(total)
    return cum


_SLOT_RE = re.compile(r"\{(\w+)\}")


class Lexicon:
    """Named word lists (Zipf-weighted by list order) and generator callables for template slots."""

    def __init__(self, slots: dict[str, tuple[str, ...] | Callable[[Rng], str]], parent: "Lexicon | None" = None):
        self.parent = parent
        self.slots: dict[str, object] = {}
        for key, value in slots.items():
            self.slots[key] = value if callable(value) else (value, _zipf_cum_weights(len(value)))

    def pick(self, rng: Rng, key: str) -> str:
        entry = self.slots.get(key)
        if entry is None:
            if self.parent is None:
                raise KeyError(f"template slot {{{key}}} is not defined")
            return self.parent.pick(rng, key)
        if callable(entry):
            return entry(rng)
        words, cum = entry
        return rng.choices(words, cum_weights=cum)[0]


def _compile(templates: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    # re.split with a group: literals at even positions, slot names at odd ones.
    return tuple(tuple(_SLOT_RE.split(t)) for t in templates)


def _fill(rng: Rng, parts: tuple[str, ...], lexicon: Lexicon) -> str:
    out = list(parts)
    for i in range(1, len(out), 2):
        out[i] = lexicon.pick(rng, out[i])
    return "".join(out)


class Style:
    """One domain's sentence source: a lexicon plus templates; sentences other domains may borrow."""

    def __init__(self, slots: dict, templates: str):
        self.lexicon = Lexicon(slots, COMMON)
        self.templates = _compile(_phrases(templates))

    def fill(self, rng: Rng, template: str) -> str:
        return _fill(rng, tuple(_SLOT_RE.split(template)), self.lexicon)

    def word(self, rng: Rng, key: str) -> str:
        return self.lexicon.pick(rng, key)

    def sentence(self, rng: Rng) -> str:
        text = _fill(rng, rng.choice(self.templates), self.lexicon)
        return text[:1].upper() + text[1:]

    def paragraph(self, rng: Rng, n_sentences: int) -> str:
        return " ".join(self.sentence(rng) for _ in range(n_sentences))


def _int_slot(lo: int, hi: int) -> Callable[[Rng], str]:
    return lambda rng: str(rng.randint(lo, hi))


# Shared by every domain: names, places, numbers, connectives. Function words come with templates.
COMMON = Lexicon({
    "first": _words("John Mary David Sarah Michael Anna James Laura Robert Emma Peter Julia Thomas "
                    "Maria Daniel Sophie Paul Elena Mark Clara Steven Rachel Kevin Alice"),
    "last": _words("Smith Johnson Miller Brown Garcia Chen Wilson Taylor Anderson Martin Lee Walker "
                   "Young King Wright Lopez Hill Scott Green Adams Baker Nelson Carter Mitchell"),
    "place": _words("London Paris Berlin Chicago Boston Madrid Tokyo Toronto Sydney Vienna Dublin "
                    "Seattle Denver Oslo Lisbon Prague Austin Geneva Munich Portland"),
    "conn": _phrases("however | in addition | for example | in particular | as a result | "
                     "on the other hand | moreover | in this case | for this reason | in practice"),
    "adv": _words("also often generally usually only still clearly simply rarely largely"),
    "num": _int_slot(2, 99),
    "big": _int_slot(100, 9999),
    "year": _int_slot(1850, 2023),
    "month": _words("January February March April May June July August September October November December"),
    "day": _int_slot(1, 28),
    "weekday": _words("Monday Tuesday Wednesday Thursday Friday"),
})


# ---------------------------------------------------------------- styles (sentence sources)

WIKI = Style({
    "thing": _phrases("town | river | village | railway station | football club | cathedral | "
                      "university | species of beetle | mountain range | newspaper | political party | "
                      "album | museum | lighthouse | parish | island | dynasty | battleship"),
    "region": _phrases("the county of Kent | northern Italy | the Rhine valley | southern Ontario | "
                       "the province of Galicia | central Bavaria | the Scottish Highlands | western Norway"),
    "role": _phrases("architect | botanist | composer | historian | mayor | bishop | engineer | poet | general"),
    "event": _phrases("the Second World War | the industrial revolution | the Napoleonic Wars | "
                      "the Great Depression | the Reformation | the railway boom"),
    "n": _words("population census municipality district railway parish tributary dynasty treaty "
                "settlement province cathedral monastery charter territory region"),
}, """
{thing} is located in {region} | it was founded in {year} by the {role} {first} {last} |
according to the {year} census, the population was {big} | it is home to a {n} and a {n} | the {n} was rebuilt after {event} |
it is named after {first} {last}, a local {role} | the {n} lies on the banks of a small {n} |
during {event} the {n} served as a regional centre of trade | the name is first recorded in {year} |
in {year} the {n} was annexed to {region} | it has been listed as a protected {n} since {year} |
the {role} {first} {last} was born here in {year} | the {n} is served by a {n} on the line to {place}
""")

HN = Style({
    "tech": _words("Rust Go Kubernetes Postgres SQLite React Python Docker Lisp Haskell WebAssembly Redis "
                   "Emacs Vim Linux LLMs Terraform Elixir Zig"),
    "biz": _phrases("startups | VCs | big tech | the App Store | remote work | YC | SaaS pricing | "
                    "open source funding | ad-tech | hiring managers"),
    "opinion": _phrases("overrated | underrated | a footgun | a solved problem | cargo culting | "
                        "premature optimization | good enough | a leaky abstraction"),
    "n": _words("startup founder stack codebase deploy latency benchmark monolith microservice "
                "runtime compiler refactor outage incident"),
}, """
honestly {tech} is {opinion} for most teams | I've been running {tech} in production for {num} months and it's fine |
the real problem is {biz}, not {tech} | the whole point of {tech} is to avoid a {n} | this is {opinion}, we tried it at my last {n} |
can someone explain why {biz} keep ignoring this? | we rewrote our {n} in {tech} and latency dropped by {num}% |
the {n} post-mortem is worth reading and a good example of {biz} | my hot take: {tech} is {opinion} |
I don't buy the argument that {biz} care about this | at scale the {n} is always the bottleneck |
that matches my experience with {tech} and {biz}
""")

STACK = Style({
    "lang": _words("Python JavaScript Java C# PHP Bash SQL Ruby C++ TypeScript"),
    "thing": _phrases("dictionary | array | string | list comprehension | regular expression | foreign key | "
                      "null pointer | lambda | HashMap | dataframe | cron job | symlink | virtualenv | iterator"),
    "err": _phrases("TypeError | NullPointerException | segmentation fault | IndexError | syntax error | "
                    "permission denied | undefined reference | KeyError | stack overflow"),
    "n": _words("method function loop variable query column answer question output function argument"),
}, """
how do I convert a {thing} to a {thing} in {lang}? | I tried both a {thing} and a {thing}, and neither works | I keep getting a {err} when I call this {n} |
you can use a {thing} instead of a {thing} here | this answer assumes {lang} {num} or later |
the {err} happens because the {n} returns None | note that the {n} is evaluated lazily |
did you check that the {thing} is not empty? | edit: it works if I wrap the {n} in a {thing} |
this is a duplicate of the question about {thing} in {lang} | +1, the accepted answer is outdated |
the simplest fix is to pass the {thing} as an argument to the {n} | see the documentation of {lang} for details
""")

IRC = Style({
    "pkg": _words("grub xorg nvidia-driver network-manager apt ubuntu-desktop pulseaudio samba openssh-server "
                  "wine compiz gparted ndiswrapper fglrx vlc firefox"),
    "cmd": _phrases("sudo apt-get update | sudo apt-get install | sudo dpkg-reconfigure | lsmod | dmesg | "
                    "sudo modprobe | lspci | ifconfig | sudo update-grub | uname -a | df -h | tail /var/log/syslog"),
    "rel": _words("hardy intrepid jaunty karmic lucid maverick dapper gutsy feisty"),
    "n": _words("kernel partition driver repo wireless card livecd bootloader mirror package terminal sources.list"),
}, """
anyone know why my {n} stops working after upgrading to {rel}? | try {cmd} and paste the output |
did you install {pkg} from the repo? | my {n} is not detected on {rel} | you need to run {cmd} first |
pastebin the output of {cmd} please | {pkg} is broken in {rel}, use the backport |
the {n} works in the livecd but not after install | reboot and check the {n} again |
is {pkg} in universe or multiverse? | thanks that fixed my {n}
""")

MED = Style({
    "cond": _phrases("type 2 diabetes | hypertension | breast cancer | chronic kidney disease | asthma | "
                     "sepsis | major depressive disorder | rheumatoid arthritis | heart failure | obesity | "
                     "Alzheimer's disease | tuberculosis | HIV infection | osteoporosis"),
    "drug": _words("metformin insulin tamoxifen atorvastatin cisplatin ibuprofen prednisone rituximab "
                   "lisinopril warfarin doxorubicin placebo"),
    "mol": _phrases("interleukin-6 | TNF-alpha | C-reactive protein | HbA1c | p53 | VEGF | serum creatinine | "
                    "troponin | CD4+ T cells | mTOR | NF-kB"),
    "pop": _phrases("patients | adults | children | elderly patients | postmenopausal women | outpatients | "
                    "healthy volunteers | mice | rats"),
    "design": _phrases("randomized controlled trial | retrospective cohort study | cross-sectional study | "
                       "prospective study | meta-analysis | case-control study"),
    "stat": lambda rng: rng.choice((
        f"(p < 0.0{rng.randint(1, 5)})",
        f"(95% CI, {rng.randint(1, 9) / 10 + 1:.1f}-{rng.randint(25, 60) / 10:.1f})",
        f"(OR = {rng.randint(11, 39) / 10:.1f})",
        f"(n = {rng.randint(20, 900)})",
        f"(HR {rng.randint(40, 95) / 100:.2f})",
    )),
}, """
we conducted a {design} of {big} {pop} with {cond} | treatment with {drug} significantly reduced {mol} levels {stat} |
the incidence of {cond} was higher in {pop} receiving {drug} {stat} | levels of {mol} were associated with {cond} {stat} |
these findings suggest that {mol} may be a therapeutic target in {cond} | {pop} were randomly assigned to {drug} or placebo |
the primary outcome was mortality at {num} months | no serious adverse events related to {drug} were observed | {drug} is safe and well tolerated in {pop} |
further studies are needed to confirm the role of {mol} in {cond} | expression of {mol} was elevated in {pop} with {cond} {stat}
""")

LAW = Style({
    "party": _words("appellant appellee defendant plaintiff petitioner respondent movant"),
    "claim": _phrases("breach of contract | negligence | due process | ineffective assistance of counsel | "
                      "summary judgment | qualified immunity | the Fourth Amendment | the statute of limitations | "
                      "abuse of discretion | the sentencing guidelines"),
    "court": _phrases("the district court | the trial court | the circuit court | this Court | the Board | "
                      "the Supreme Court"),
    "cite": lambda rng: (f"{rng.choice(COMMON_LAST)} v. {rng.choice(COMMON_LAST)}, {rng.randint(100, 999)} "
                         f"{rng.choice(('F.2d', 'F.3d', 'U.S.', 'S.W.2d', 'N.E.2d', 'P.3d', 'So. 2d'))} "
                         f"{rng.randint(1, 1400)}, {rng.randint(1, 1400)} "
                         f"({rng.choice(('9th Cir.', '5th Cir.', '2d Cir.', 'Tex. App.', 'Cal.', 'N.Y.', 'Fla.'))} "
                         f"{rng.randint(1960, 2012)})"),
}, """
the {party} contends that {court} erred in granting {claim} | see {cite} |
we review a grant of {claim} de novo. {cite} | {court} found that the {party} had waived any claim of {claim} |
accordingly, we affirm the judgment of {court} | the {party} argues that the evidence was insufficient to support the verdict |
under {claim}, the {party} bears the burden of proof. See {cite} | we find no abuse of discretion. {cite} |
the {party} timely filed a notice of appeal | the judgment is affirmed in part and reversed in part | because the {party} failed to preserve the issue of {claim}, we decline to reach it
""")

COMMON_LAST = COMMON.slots["last"][0]


def _web_price(rng: Rng) -> str:
    return f"${rng.randint(5, 499)}.{rng.choice(('99', '95', '00', '49'))}"


WEB = Style({
    "prod": _phrases("leather boots | patio furniture | wireless headphones | yoga mats | coffee makers | "
                     "gift cards | wedding dresses | garden tools | car insurance | hotel rooms | kitchen cabinets | "
                     "vitamin supplements | led lights | running shoes"),
    "webv": _words("shop browse discover subscribe book explore download order check"),
    "a": _words("best amazing affordable beautiful easy great perfect top new quality unique cheap"),
    "n": _words("home family weekend recipe deal tips guide blog team customers service store products "
                "kids holiday trip website"),
    "price": _web_price,
}, """
{webv} our {a} {prod} today | free shipping on all {prod} over {price} | we offer {a} {prod} at the lowest prices |
click here to {webv} more {a} {n} ideas | this {a} {n} is perfect for the whole {n} |
our {n} is here to help you find the {a} {prod} | sign up for our newsletter and get {num}% off |
posted by {first} on {month} {day}, {year} | read more about our {a} {n} and {prod} |
we had an {a} {n} in {place} last {month} | the {a} {n} for your {n} starts here |
contact us to {webv} {prod} for your {n} | all rights reserved. privacy policy | terms of use
""")


def _sentences(style: Style, rng: Rng, target: int, sep: str = " ") -> str:
    out, words = [], 0
    while words < target:
        s = style.sentence(rng)
        out.append(s if s.endswith(("?", ".", "!")) else s + ".")
        words += s.count(" ") + 1
    return sep.join(out)


def _doc_length(rng: Rng, median: float, lo: int = 20, hi: int = 420) -> int:
    return max(lo, min(hi, int(rng.lognormvariate(math.log(median), 0.55))))


# ---------------------------------------------------------------- documents, one function per domain

def doc_pile_cc(rng: Rng) -> str:
    # Generic web text that borrows from other domains: the mixture, not only pile_cc, predicts its loss.
    sources = (WEB, WIKI, HN, STACK, IRC, MED, EUROPARL, LAW, GUTENBERG)
    weights = (0.50, 0.14, 0.10, 0.09, 0.05, 0.04, 0.03, 0.03, 0.02)
    target, words, paragraphs, current = _doc_length(rng, 140), 0, [], []
    title = WEB.fill(rng, rng.choice(("{a} {prod} in {place}", "{num} {a} {n} tips", "{first}'s {n} blog")))
    while words < target:
        source = rng.choices(sources, weights)[0]
        s = source.sentence(rng)
        current.append(s if s.endswith(("?", ".", "!")) else s + ".")
        words += s.count(" ") + 1
        if rng.random() < 0.2:
            paragraphs.append(" ".join(current))
            current = []
    paragraphs.append(" ".join(current))
    return title.title() + "\n\n" + "\n\n".join(p for p in paragraphs if p)


def doc_wikipedia_en(rng: Rng) -> str:
    title = f"{rng.choice(COMMON.slots['place'][0])} {WIKI.word(rng, 'thing').title()}"
    sections = ["History", "Geography", "Demographics", "Culture", "Notable people", "Architecture"]
    target = _doc_length(rng, 160)
    parts = [f"{title} is a {WIKI.word(rng, 'thing')} in {WIKI.word(rng, 'region')}. " + _sentences(WIKI, rng, target // 3)]
    for name in rng.sample(sections, rng.randint(1, 3)):
        parts.append(f"== {name} ==\n" + _sentences(WIKI, rng, target // 3))
    parts.append("== References ==")
    return "\n\n".join(parts)


def doc_hackernews(rng: Rng) -> str:
    title = HN.fill(rng, rng.choice(("Show HN: A {tech} {n} in {num} lines", "Ask HN: Is {tech} {opinion}?",
                                     "Why we moved our {n} to {tech}", "{tech} {num}.0 released")))
    target, words, lines, depth = _doc_length(rng, 150), 0, [title], 0
    while words < target:
        user = f"{rng.choice(COMMON.slots['first'][0]).lower()}{rng.randint(1, 999)}"
        body = " ".join(HN.sentence(rng) for _ in range(rng.randint(1, 3)))
        indent = "  " * depth
        lines.append(f"{indent}{user} {rng.randint(1, 23)} hours ago | parent | next\n{indent}{body}")
        words += body.count(" ") + 6
        depth = max(0, min(4, depth + rng.choice((-1, 0, 1, 1))))
    return "\n\n".join(lines)


def doc_stackexchange(rng: Rng) -> str:
    lang = STACK.word(rng, "lang")
    title = STACK.fill(rng, "How to use a {thing} with a {thing} in ") + lang + "?"
    target = _doc_length(rng, 170)
    code = "\n".join(f"    {rng.choice(('x', 'data', 'items', 'result'))} = {rng.choice(('parse', 'load', 'get'))}"
                     f"({rng.choice(('path', 'key', 'row'))}, {rng.randint(0, 9)})" for _ in range(rng.randint(1, 4)))
    question = _sentences(STACK, rng, target // 2)
    answers = [f"A ({rng.randint(-2, 150)} votes):\n\n" + _sentences(STACK, rng, target // 3)
               for _ in range(rng.randint(1, 3))]
    return f"Q: {title}\n\n{question}\n\n{code}\n\n" + "\n\n".join(answers)


def doc_ubuntu_irc(rng: Rng) -> str:
    nicks = [f"{w}{rng.choice(('', '_', '42', '|away', 'x'))}" for w in
             rng.sample(_words("ubuntu_fan linuxguy jrib ActionParsnip Pici ikonia nalioth topyli dr_willis "
                               "holstein bazhang genii Flannel mneptok wols tuxbox"), 5)]
    hour, minute = rng.randint(0, 23), rng.randint(0, 59)
    target, words, lines = _doc_length(rng, 130), 0, []
    while words < target:
        minute += rng.randint(0, 3)
        hour, minute = (hour + minute // 60) % 24, minute % 60
        stamp, nick = f"[{hour:02d}:{minute:02d}]", rng.choice(nicks)
        r = rng.random()
        if r < 0.08:
            lines.append(f"{stamp} === {nick} [~{nick}@{rng.randint(10, 250)}.dsl.example.net] has joined #ubuntu")
        elif r < 0.3:
            lines.append(f"{stamp} <{nick}> {rng.choice(nicks)}: {IRC.sentence(rng)}")
        else:
            lines.append(f"{stamp} <{nick}> {IRC.sentence(rng)}")
        words += lines[-1].count(" ") + 1
    return "\n".join(lines)


def doc_pubmed_abstracts(rng: Rng) -> str:
    target = _doc_length(rng, 190)
    return "\n".join(f"{head}: {_sentences(MED, rng, target // 4)}"
                     for head in ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS"))


LAB = Style({
    "method": _phrases("Western blot | quantitative PCR | flow cytometry | immunohistochemistry | RNA sequencing | "
                       "confocal microscopy | ELISA | mass spectrometry | CRISPR knockout"),
    "cell": _phrases("HeLa cells | primary fibroblasts | HEK293T cells | macrophages | hepatocytes | neurons | "
                     "epithelial cells"),
    "reagent": _phrases("antibodies | siRNA | fetal bovine serum | DAPI | lentiviral vectors | recombinant protein"),
    "ref": lambda rng: f"[{rng.randint(1, 60)}]",
    "fig": lambda rng: f"(Fig. {rng.randint(1, 7)}{rng.choice('ABCDE')})",
}, """
{cell} were cultured in medium supplemented with {num}% {reagent} | protein levels were measured by {method} {fig} |
consistent with previous reports {ref}, {mol} was upregulated in {cell} | {method} revealed a {num}-fold increase {fig} |
these results are in line with earlier work on {cond} {ref} | data are presented as mean +/- SD of {num} independent experiments |
knockdown with {reagent} reduced {mol} expression {stat} | we next asked whether {mol} is required for this effect {fig}
""")
LAB.lexicon.parent = MED.lexicon  # lab text reuses the clinical vocabulary


def doc_pubmed_central(rng: Rng) -> str:
    target = _doc_length(rng, 260, hi=480)
    parts = []
    for head, style in (("1. Introduction", MED), ("2. Materials and Methods", LAB), ("3. Results", LAB),
                        ("4. Discussion", MED)):
        parts.append(f"{head}\n\n" + " ".join(
            (style if rng.random() < 0.7 else LAB).sentence(rng) + "." for _ in range(max(2, target // 60))))
    return "\n\n".join(parts)


ARXIV = Style({
    "obj": _phrases("neural network | Hilbert space | Markov chain | random graph | Lie algebra | gauge field | "
                    "convex function | dark matter halo | quantum channel | spin chain | Banach space | estimator"),
    "prop": _words("compact bounded ergodic invariant convergent unitary sparse smooth asymptotic stable"),
    "math": lambda rng: rng.choice((
        f"$\\mathcal{{O}}(n^{rng.randint(2, 4)})$", f"$x_{{{rng.choice('ijkn')}}}$",
        f"$\\lambda_{rng.randint(1, 9)}$", "$\\|f\\|_{L^2}$", f"$\\epsilon < 10^{{-{rng.randint(2, 9)}}}$",
        f"$d = {rng.randint(2, 11)}$", "$\\nabla \\cdot E = \\rho$", "$\\mathbb{E}[X]$")),
    "cite": lambda rng: f"\\cite{{{rng.choice(COMMON_LAST).lower()}{rng.randint(1995, 2023)}}}",
}, """
we show that every {prop} {obj} admits a {prop} extension {cite} | let {math} denote the {obj} defined above |
in this paper we study {prop} {obj}s with {math} | our main result is that the {obj} is {prop} whenever {math} |
the proof follows from Lemma {num} and the bound {math} | similar results were obtained in {cite} |
numerical experiments confirm the scaling {math} | the proof of Theorem {num} is similar to that of {cite} |
we refer to {cite} for a survey of {prop} {obj}s and their applications | it remains open whether the {obj} is {prop} for {math}
""")


def doc_arxiv(rng: Rng) -> str:
    target = _doc_length(rng, 220, hi=460)
    eq = (f"\\begin{{equation}}\n  f(x) = \\sum_{{i=1}}^{{n}} \\alpha_i x^{{{rng.randint(2, 5)}}} "
          f"+ \\int_0^1 g(t)\\, dt\n\\end{{equation}}")
    return (f"\\begin{{abstract}}\n{_sentences(ARXIV, rng, target // 4)}\n\\end{{abstract}}\n\n"
            f"\\section{{Introduction}}\n{_sentences(ARXIV, rng, target // 3)}\n{eq}\n"
            f"\\section{{Main results}}\n{_sentences(ARXIV, rng, target // 3)}")


CODE_NOUNS = _words("buffer node config request handler token cache queue user item record stream packet "
                    "session index table entry path frame message socket")
CODE_VERBS = _words("get set parse load update build read write create find check init compute flush send")
CODE_ATTRS = _words("size name value count id data next length status offset")


def _code_function(rng: Rng, language: str) -> str:
    verb, noun, attr = rng.choice(CODE_VERBS), rng.choice(CODE_NOUNS), rng.choice(CODE_ATTRS)
    arg, var, limit = rng.choice(CODE_NOUNS) + "s", "result", rng.randint(0, 64)
    if language == "python":
        body = [f"def {verb}_{noun}({arg}, limit={limit}):",
                f'    """{verb.capitalize()} the {noun} of each item in {arg} and return a list."""',
                f"    {var} = []", f"    for item in {arg}:",
                f"        if item.{attr} > limit:", f"            {var}.append(item.{rng.choice(CODE_ATTRS)})"]
        if rng.random() < 0.5:
            body += ["        else:", f"            {var}.append({rng.choice(CODE_VERBS)}_{noun}(item))"]
        body.append(f"    return {var}")
    elif language == "c":
        body = [f"static int {verb}_{noun}(struct {noun} *{arg}, size_t n)", "{", "    size_t i;",
                "    for (i = 0; i < n; i++) {", f"        if ({arg}[i].{attr} == {limit}) {{",
                f"            return {rng.choice(('-1', '0', 'i'))};", "        }", "    }", "    return 0;", "}"]
    else:
        name = verb + noun.capitalize()
        body = [f"function {name}({arg}) {{", f"  const {var} = {arg}.filter((x) => x.{attr} > {limit});",
                f"  if (!{var}.length) {{", f"    throw new Error('{noun} not found');", "  }",
                f"  return {var}.map((x) => x.{rng.choice(CODE_ATTRS)});", "}"]
    return "\n".join(body)


def doc_github(rng: Rng) -> str:
    language = rng.choice(("python", "python", "c", "js"))
    header = {"python": "import os\nimport sys\n", "c": "#include <stdio.h>\n#include <stdlib.h>\n",
              "js": "'use strict';\n\nconst fs = require('fs');\n"}[language]
    comment = {"python": "# ", "c": "/* ", "js": "// "}[language]
    target, words, parts = _doc_length(rng, 160), 0, [header]
    while words < target:
        parts.append(f"{comment}{rng.choice(CODE_VERBS)} helpers for the {rng.choice(CODE_NOUNS)} module"
                     + (" */" if language == "c" else ""))
        parts.append(_code_function(rng, language))
        words += parts[-1].count(" ") // 3 + parts[-1].count("\n") * 3
    return "\n\n".join(parts) + "\n"


def _dm_problem(rng: Rng) -> str:
    kind = rng.randrange(6)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice("*+-")
        return f"Calculate {a}{op}{b}. Answer: {a * b if op == '*' else a + b if op == '+' else a - b}"
    if kind == 1:
        b, q = rng.randint(2, 30), rng.randint(2, 60)
        c = rng.randint(1, 20)
        return f"What is ({b * q}/{b} + {c})*2? Answer: {(q + c) * 2}"
    if kind == 2:
        a, x, b = rng.randint(2, 12), rng.randint(-20, 20), rng.randint(1, 50)
        var, sign = rng.choice("xyzkt"), rng.choice("+-")
        c = a * x + (b if sign == "+" else -b)
        return f"Solve {a}*{var} {sign} {b} = {c} for {var}. Answer: {x}"
    if kind == 3:
        a, b = rng.randint(20, 999), rng.randint(2, 19)
        return f"What is the remainder when {a} is divided by {b}? Answer: {a % b}"
    if kind == 4:
        g, m, n = rng.randint(2, 30), rng.randint(1, 12), rng.randint(1, 12)
        return f"Calculate the greatest common divisor of {g * m} and {g * n}. Answer: {math.gcd(g * m, g * n)}"
    a, b, k = rng.randint(2, 9), rng.randint(-9, 9), rng.randint(-10, 10)
    sign = "+" if b >= 0 else "-"
    return f"Let f be a function with f(x) = {a}*x {sign} {abs(b)}. What is f({k})? Answer: {a * k + b}"


def doc_dm_mathematics(rng: Rng) -> str:
    return "\n".join(_dm_problem(rng) for _ in range(rng.randint(3, 30)))


MAIL = Style({
    "deal": _phrases("gas contract | power trade | ISDA agreement | transport capacity | swap confirmation | "
                     "credit line | pipeline tariff | term sheet"),
    "company": _phrases("Dynegy | El Paso | PG&E | Duke Energy | Reliant | Williams | TXU | Calpine"),
    "doc": _phrases("spreadsheet | draft | memo | schedule | redline | presentation"),
    "hour": _int_slot(8, 17),
}, """
please review the attached {doc} and let me know if you have any questions | we need to finalize the {deal} with {company} by {weekday} |
can you send me the latest {doc} for the {deal}? | I spoke with {first} at {company} about the {deal} |
let's discuss this on {weekday} at {hour}:00 | thanks for your help on the {deal} | attached is a copy of the {doc} in the format {first} asked for | I will forward the {doc} to legal |
{company} wants to revisit the pricing on the {deal} | call me if you need anything else
""")


def doc_enron_emails(rng: Rng) -> str:
    sender, to = (f"{rng.choice(COMMON.slots['first'][0]).lower()}.{rng.choice(COMMON_LAST).lower()}@enron.com"
                  for _ in range(2))
    subject = MAIL.fill(rng, rng.choice(("{deal}", "Re: {deal}", "{company} {doc}", "FW: {doc} for {weekday}")))
    when = (f"{MAIL.word(rng, 'weekday')[:3]}, {rng.randint(1, 28)} {MAIL.word(rng, 'month')[:3]} "
            f"{rng.randint(1999, 2001)} {rng.randint(7, 19):02d}:{rng.randint(0, 59):02d}:00 -0700")
    body = _sentences(MAIL, rng, _doc_length(rng, 90, hi=250) // 2)
    text = f"From: {sender}\nTo: {to}\nSubject: {subject}\nDate: {when}\n\n{body}\n\n{sender.split('.')[0].title()}"
    if rng.random() < 0.5:
        quoted = "\n".join("> " + MAIL.sentence(rng) for _ in range(rng.randint(1, 4)))
        text += f"\n\n-----Original Message-----\nFrom: {to}\nSent: {when}\n{quoted}"
    return text


LEGAL_HEADS = _phrases("IN THE UNITED STATES COURT OF APPEALS FOR THE FIFTH CIRCUIT | SUPREME COURT OF TEXAS | "
                       "COURT OF APPEALS OF CALIFORNIA | UNITED STATES DISTRICT COURT FOR THE DISTRICT OF OREGON")


def doc_freelaw(rng: Rng) -> str:
    target = _doc_length(rng, 220, hi=450)
    head = (f"{rng.choice(LEGAL_HEADS)}\n\nNo. {rng.randint(90, 112) % 100:02d}-{rng.randint(1000, 9999)}\n\n"
            f"{rng.choice(COMMON_LAST).upper()} v. {rng.choice(COMMON_LAST).upper()}\n\nOPINION")
    body = "\n\n".join(_sentences(LAW, rng, target // 3) for _ in range(3))
    return f"{head}\n\n{body}\n\n{rng.choice(('AFFIRMED.', 'REVERSED and REMANDED.', 'Affirmed in part.'))}"


EUROPARL = Style({
    "inst": _phrases("the Commission | the Council | this Parliament | the Member States | the Presidency | "
                     "the European Central Bank"),
    "topic": _phrases("the internal market | fisheries policy | the enlargement process | agricultural subsidies | "
                      "the Stability Pact | human rights | the structural funds | maritime safety | the common foreign policy"),
    "group": _phrases("my group | the Socialist Group | the Group of the European People's Party | the rapporteur"),
}, """
Mr President, ladies and gentlemen, {inst} must act on {topic} | I would like to thank {group} for this excellent report |
we cannot accept that {inst} ignores {topic} | {group} supports the amendments on {topic} |
it is essential that {inst} and {inst} cooperate closely | this is a matter of principle for {group} | the citizens of Europe expect results on {topic} |
I therefore call on {inst} to present a proposal before {month} | this report on {topic} is a step in the right direction
""")


def doc_europarl(rng: Rng) -> str:
    speech = _sentences(EUROPARL, rng, _doc_length(rng, 150))
    return f"{speech}\n\n{rng.choice(('(Applause)', '(The sitting was closed)', ''))}".strip()


PATENT = Style({
    "field": _phrases("semiconductor devices | fluid dispensing systems | wireless communication | vehicle seats | "
                      "optical fibers | data storage | medical catheters | printing apparatus | fastening devices"),
    "part": _phrases("housing | substrate | valve | electrode | shaft | sensor | controller | bracket | nozzle | coil"),
    "a": _words("conventional prior improved flexible rotatable detachable elongated annular"),
    "patno": lambda rng: f"{rng.randint(3, 7)},{rng.randint(100, 999)},{rng.randint(100, 999)}",
}, """
the present invention relates generally to {field}, and more particularly to a {a} {part} | {a} devices of this type include a {part} coupled to a {part} |
such {a} systems suffer from several disadvantages | a plurality of {part}s are disposed about the {part} |
it would therefore be desirable to provide an {a} {part} that overcomes these problems | wherein said {part} is mounted on the {part} |
U.S. Pat. No. {patno} discloses a {part} for {field} | however, the {a} {part} is expensive to manufacture | such a {part} is used in {field} and is known in the art
""")


def _two_sections(style: Style, rng: Rng, median: float, first: str, second: str, first_share: float) -> str:
    target = _doc_length(rng, median)
    head = round(target * first_share)
    return f"{first}{_sentences(style, rng, head)}{second}{_sentences(style, rng, target - head)}"


def doc_uspto_backgrounds(rng: Rng) -> str:
    return _two_sections(PATENT, rng, 170, "BACKGROUND OF THE INVENTION\n\n1. Field of the Invention\n\n",
                         "\n\n2. Description of the Related Art\n\n", 0.25)


GRANT = Style({
    "aim": _phrases("characterize the mechanisms | develop novel interventions | identify biomarkers | "
                    "test the hypothesis | establish a cohort | evaluate the efficacy"),
    "area": _phrases("substance abuse | cardiovascular disease | childhood obesity | HIV prevention | "
                     "cancer health disparities | neurodegeneration | maternal health"),
    "aimno": _int_slot(1, 3),
}, """
the long-term goal of this proposal is to {aim} underlying {area} | Specific Aim {aimno}: to {aim} in {area} |
the proposed research is relevant to public health because {area} remains a major burden | our preliminary data support the feasibility of this project | this work will train a new generation of scientists and clinicians |
this application will {aim} using an innovative approach | the investigators have extensive experience in {area} |
the results will inform future clinical trials in {area}
""")


def doc_nih_exporter(rng: Rng) -> str:
    return _two_sections(GRANT, rng, 180, "DESCRIPTION (provided by applicant): ", "\n\nPUBLIC HEALTH RELEVANCE: ", 0.75)


GUTENBERG = Style({
    "n": _words("heart lady knight castle moor sorrow lantern chamber maiden squire parson carriage "
                "wind candle brook sword"),
    "a": _words("melancholy noble weary gentle dreadful ancient solemn fair wretched humble"),
    "v": _phrases("didst behold | hath spoken | wouldst fain know | doth lament | shalt see | art bound"),
}, """
and lo, the {a} {n} stood silent beneath the {n} | "thou {v} the {n}," said {first}, "ere the night be done" |
whereupon the {a} {n} did weep most bitterly | I pray thee, good sir, tell me of the {n} |
it was a {a} evening, and the {n} lay still upon the {n} | "nay," quoth he, "I {v} no such {n}" |
she bade him farewell and went forth into the {a} {n} | he is come to the {n} in the {a} night | verily, the {n} was {a} beyond all telling
""")


def _roman(n: int) -> str:
    out = ""
    for value, letters in ((10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")):
        while n >= value:
            out, n = out + letters, n - value
    return out


def doc_gutenberg_pg_19(rng: Rng) -> str:
    target = _doc_length(rng, 230, hi=460)
    paragraphs = [_sentences(GUTENBERG, rng, 60) for _ in range(max(1, target // 60))]
    return f"CHAPTER {_roman(rng.randint(1, 39))}.\n\n" + "\n\n".join(paragraphs)


PHIL = Style({
    "ism": _words("physicalism dualism realism nominalism contextualism externalism compatibilism "
                  "reliabilism functionalism expressivism"),
    "thinker": _words("Kant Hume Frege Quine Lewis Kripke Aristotle Wittgenstein Descartes Rawls"),
    "concept": _phrases("moral responsibility | the a priori | personal identity | free will | epistemic justification | "
                        "mental causation | the concept of knowledge | normativity | consciousness"),
}, """
in this paper I argue that {ism} cannot account for {concept} | {thinker}'s view of {concept} faces a familiar objection |
one might object that {ism} is committed to a regress | I defend a version of {ism} against this objection |
the argument turns on an ambiguity in {concept} | if this is right, {thinker} was mistaken about {concept} |
consider the following thought experiment | {ism} and {ism} agree on the nature of {concept} | this suggests that {concept} is not a natural kind
""")


def doc_philpapers(rng: Rng) -> str:
    return f"Abstract\n\n{_sentences(PHIL, rng, _doc_length(rng, 160))}"


DOCUMENT_GENERATORS: dict[str, Callable[[Rng], str]] = {
    "pile_cc": doc_pile_cc, "pubmed_central": doc_pubmed_central, "arxiv": doc_arxiv, "github": doc_github,
    "freelaw": doc_freelaw, "stackexchange": doc_stackexchange, "wikipedia_en": doc_wikipedia_en,
    "uspto_backgrounds": doc_uspto_backgrounds, "pubmed_abstracts": doc_pubmed_abstracts,
    "gutenberg_pg_19": doc_gutenberg_pg_19, "dm_mathematics": doc_dm_mathematics, "ubuntu_irc": doc_ubuntu_irc,
    "hackernews": doc_hackernews, "europarl": doc_europarl, "nih_exporter": doc_nih_exporter,
    "philpapers": doc_philpapers, "enron_emails": doc_enron_emails,
}
assert set(DOCUMENT_GENERATORS) == set(DOMAINS)


def _word_count(text: str) -> int:
    return len(text.split())


def _generate_domain(domain: str, seed: int, train_words: int, valid_docs: int) -> dict:
    generate = DOCUMENT_GENERATORS[domain]
    # String seeds hash with sha512: stable across processes and Python versions.
    train_rng = random.Random(f"mini-pile/{seed}/{domain}/train")
    train, seen, words = [], set(), 0
    while words < train_words or len(train) < MIN_TRAIN_DOCS:
        doc = generate(train_rng)
        train.append(doc)
        seen.add(doc)
        words += _word_count(doc)
    valid_rng = random.Random(f"mini-pile/{seed}/{domain}/valid")
    valid = []
    while len(valid) < valid_docs:
        doc = generate(valid_rng)
        if doc not in seen:  # valid stays disjoint from train
            seen.add(doc)
            valid.append(doc)
    return {"train": train, "train_words": words, "valid": valid,
            "valid_words": sum(_word_count(d) for d in valid)}


def _params(seed: int, train_tokens: int, valid_docs: int) -> dict:
    return {"generator": "mini-pile", "version": GENERATOR_VERSION, "seed": seed,
            "train_tokens": train_tokens, "valid_docs": valid_docs}


def generate_mini_pile(out_dir: str | os.PathLike, seed: int = 0, train_tokens: int = DEFAULT_TRAIN_TOKENS,
                       valid_docs: int = DEFAULT_VALID_DOCS) -> Path:
    """Write mini-pile in the RegMix-Data layout; an existing complete folder with the same params is reused."""
    for name, value, low in (("train_tokens", train_tokens, 1000), ("valid_docs", valid_docs, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed: expected an integer, got {seed!r}")
    out_dir = Path(out_dir)
    params = _params(seed, train_tokens, valid_docs)
    manifest_path = out_dir / "corpus.json"
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        if {k: existing.get(k) for k in params} == params:
            return out_dir
        raise ValueError(f"out_dir {str(out_dir)!r} already holds a mini-pile with other parameters "
                         f"({ {k: existing.get(k) for k in params} }); asked for {params}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"out_dir {str(out_dir)!r} exists and is not a mini-pile folder (no corpus.json)")

    manifest = dict(params, domains={})
    with atomic_dir(out_dir) as tmp:
        for domain in DOMAINS:
            data = _generate_domain(domain, seed, round(TOKEN_PRIOR[domain] * train_tokens), valid_docs)
            shards = max(1, min(MAX_SHARDS, math.ceil(data["train_words"] / WORDS_PER_SHARD)))
            per_shard = math.ceil(len(data["train"]) / shards)
            files = []
            for shard in range(shards):
                name = f"train/{domain}-{shard}-0.jsonl"
                atomic_write_bytes(tmp / name, encode_documents(data["train"][shard * per_shard:(shard + 1) * per_shard]))
                files.append(name)
            name = f"valid/{domain}-0-0.jsonl"
            atomic_write_bytes(tmp / name, encode_documents(data["valid"]))
            files.append(name)
            manifest["domains"][domain] = {
                "train_docs": len(data["train"]), "train_words": data["train_words"],
                "valid_docs": len(data["valid"]), "valid_words": data["valid_words"], "files": files,
                "sha256": hashlib.sha256("\x00".join(data["train"] + data["valid"]).encode()).hexdigest()[:16],
            }
        manifest["train_words"] = sum(d["train_words"] for d in manifest["domains"].values())
        atomic_write_json(tmp / "corpus.json", manifest)
    return out_dir
