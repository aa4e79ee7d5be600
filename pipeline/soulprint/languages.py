"""Which languages a person writes in: script detection, then stopword hits for Latin text."""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache

from .text import word_set as _set

# Small, high-frequency function-word lists: enough to tell languages apart and to keep
# them out of topic keyphrases.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": _set(
        """a about above after again against all am an and any are aren't as at be because been
        before being below between both but by can can't cannot could couldn't did didn't do does
        doesn't doing don't down during each few for from further had hadn't has hasn't have
        haven't having he he'd he'll he's her here here's hers herself him himself his how how's
        i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my
        myself no nor not of off on once only or other ought our ours ourselves out over own same
        shan't she she'd she'll she's should shouldn't so some such than that that's the their
        theirs them themselves then there there's these they they'd they'll they're they've this
        those through to too under until up very was wasn't we we'd we'll we're we've were
        weren't what what's when when's where where's which while who who's whom why why's with
        won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
        also just like get got make made want wants wanted need needs know think thing things
        really actually maybe still even much many way well yes yeah okay ok please thanks thank
        hi hello hey sure lot lots something anything everything nothing someone one two use
        used using help give tell say said see look going go goes come take put keep try trying
        tried let would could should might must will shall may every another via etc vs able
        kind sort bit quite rather pretty good great right new old first last next now then
        back around always never often sometimes usually already though although however
        since whether without within across along per instead else ever able without
        write rewrite explain show create provide answer question example examples version
        above below following based give gives best better way ways time times day days
        done doing getting making makes looking looks seems seem find found start started end
        work works working worked stuff people person part point idea ideas place case issue
        different same little big long short high low real full whole sure feel felt love
        hate hope wish today tomorrow yesterday week weeks month months year years ago soon
        hour hours minute minutes second seconds here's thing's okay nice cool awesome fine
        exactly probably basically literally morning mornings evening evenings night nights
        afternoon weekend weekends"""
    ),
    "es": _set(
        """el la los las un una unos unas y o pero que de del en con por para como es son está
        gracias favor ayuda ayudar hola vale bueno claro creo entender explicar saber
        están ser estar fue era muy más menos mi mis tu tus su sus yo tú él ella nosotros ellos
        me te se le lo nos les al sí no ya también porque cuando donde qué cómo este esta estos
        estas ese esa eso hay tengo tiene tener hacer puedo puede quiero necesito sobre entre
        hasta desde todo todos toda bien mal aquí algo nada
        estoy estás estamos estaba estuve tengo tienes tenemos tenía voy vas va vamos iba
        quiero quieres quería puedes podemos necesitas hago haces hice soy eres somos
        fui sé sabes creo"""
    ),
    "fr": _set(
        """le la les un une des et ou mais que qui de du en dans avec pour par sur est sont être
        merci bonjour salut aide aider plaît crois comprendre expliquer savoir
        avoir ai as a ont je tu il elle nous vous ils elles me te se mon ma mes ton ta tes son
        sa ses ce cette ces ne pas plus moins très bien aussi comme quand où quoi comment
        pourquoi tout tous toute fait faire peux veux dois suis es était au aux leur leurs
        oui non"""
    ),
    "de": _set(
        """der die das den dem des ein eine einen einem einer und oder aber dass wie wo was wer
        bitte danke hallo hilfe helfen kannst könntest glaube verstehen erklären wissen
        warum ich du er sie es wir ihr mich mir dich dir sich mein meine dein deine sein seine
        ist sind war waren bin bist hat habe haben hatte nicht kein keine auch noch nur schon
        sehr mit von zu zum zur für auf aus bei nach über unter vor um an im ins am kann
        können will möchte muss soll wenn dann als ja nein"""
    ),
    "pt": _set(
        """o a os as um uma uns umas e ou mas que de do da dos das em no na nos nas com por para
        obrigado obrigada olá ajuda ajudar acho entender explicar saber
        como é são está estão ser estar foi era muito mais menos meu minha meus minhas seu sua
        eu você ele ela nós eles elas me te se lhe não sim já também porque quando onde isso
        isto esse essa este esta tenho tem ter fazer posso pode quero preciso sobre até
        estou estás estamos estava estive tens temos tinha vou vais vai vamos ia queres
        queria podes podemos faço fiz sou és somos fui sei sabe"""
    ),
    "it": _set(
        """il lo la i gli le un uno una e o ma che di del della dei delle in nel nella con per
        grazie ciao aiuto aiutare penso capire spiegare sapere
        su come è sono era essere avere ho hai ha abbiamo io tu lui lei noi voi loro mi ti si
        ci mio mia miei tuo tua suo sua non sì già anche perché quando dove cosa questo questa
        quello quella molto più meno tutto tutti posso voglio devo fare"""
    ),
    "nl": _set(
        """de het een en of maar dat die dit deze wat wie waar waarom hoe ik jij je hij zij ze
        bedankt dank alsjeblieft hallo hulp helpen denk begrijpen uitleggen weten
        wij we jullie mij me mijn jouw zijn haar ons onze is ben bent was waren heb hebt heeft
        hebben niet geen ook nog al wel erg heel met van voor op aan in uit bij naar over om
        tot kan kunnen wil moet als dan ja nee er"""
    ),
}
ALL_STOPWORDS: frozenset[str] = frozenset().union(*STOPWORDS.values())

NAMES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "pt": "Portuguese",
    "it": "Italian",
    "nl": "Dutch",
    "ru": "Russian",
    "uk": "Ukrainian",
    "el": "Greek",
    "ar": "Arabic",
    "he": "Hebrew",
    "hi": "Hindi",
    "th": "Thai",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "latin": "another Latin-script language",
}

# Non-Latin scripts map straight to a language (or the most likely one for the script).
_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("HANGUL", "ko"),
    ("CJK", "zh"),
    ("CYRILLIC", "ru"),
    ("GREEK", "el"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("DEVANAGARI", "hi"),
    ("THAI", "th"),
    ("LATIN", "latin"),
)
_UKRAINIAN = frozenset("іїєґ")


@lru_cache(maxsize=8192)  # bounded; a person's text uses far fewer distinct letters
def _script_of(ch: str) -> str | None:
    if ch < "\u0250":  # Basic Latin to Latin Extended-B: skip the name lookup
        return "latin"
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return None
    for prefix, code in _SCRIPTS:
        if name.startswith(prefix) or (prefix == "CJK" and "CJK" in name):
            return code
    return None


def detect_language(text: str, tokens: list[str]) -> str | None:
    """Best-guess language code of one message, or None when it is too short to tell."""
    scripts: Counter[str] = Counter()
    for ch in text[:2000]:  # a message's opening is enough and keeps this cheap
        if ch.isalpha() and (code := _script_of(ch)):
            scripts[code] += 1
    if sum(scripts.values()) < 8:
        return None
    # Kana outweighs the Han characters Japanese also uses.
    if scripts["ja"] and scripts["ja"] * 5 >= scripts["zh"]:
        scripts["ja"] += scripts.pop("zh", 0)
    script = min(scripts, key=lambda c: (-scripts[c], c))
    if script == "ru" and any(ch in _UKRAINIAN for ch in text[:2000].lower()):
        return "uk"
    if script != "latin":
        return script
    hits = {lang: sum(1 for t in tokens if t in words) for lang, words in STOPWORDS.items()}
    best = min(hits, key=lambda lang: (-hits[lang], lang))
    if hits[best] < 2 and len(tokens) > 4:
        return "latin"
    return best if hits[best] else None
