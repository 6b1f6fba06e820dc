"""Tweet text for the simulated world: a topic shows only through the words.

Each latent topic has a vocabulary of nouns, adjectives and verbs; sentences come from natural English
templates shared by all topics, so that the template says nothing and the vocabulary says everything.
Some words are shared by two topics, and filler sentences carry no topic at all, so that reading the
topic takes a language model rather than a lookup.
"""

from __future__ import annotations

import numpy as np

TOPICS: dict[str, dict[str, list[str]]] = {
    "football": {
        "nouns": [
            "striker",
            "derby",
            "penalty",
            "league table",
            "goalkeeper",
            "transfer window",
            "midfield",
            "stoppage time",
            "the referee",
            "away fans",
            "clean sheet",
            "the pitch",
        ],
        "adjs": ["offside", "clinical", "relegated", "unbeaten", "tactical"],
        "verbs": ["scored", "defended", "pressed", "equalised", "subbed off"],
        "tags": ["football", "matchday", "UCL"],
    },
    "machine_learning": {
        "nouns": [
            "transformer",
            "gradient",
            "training run",
            "the loss curve",
            "GPU cluster",
            "embedding",
            "benchmark",
            "fine-tune",
            "dataset",
            "attention head",
            "checkpoint",
            "inference latency",
        ],
        "adjs": ["overfit", "quantized", "distributed", "pretrained", "sparse"],
        "verbs": ["trained", "evaluated", "deployed", "fine-tuned", "profiled"],
        "tags": ["MachineLearning", "AI", "DeepLearning"],
    },
    "cooking": {
        "nouns": [
            "sourdough",
            "cast iron pan",
            "risotto",
            "the spice rack",
            "braised short ribs",
            "knife skills",
            "umami",
            "pasta dough",
            "the oven",
            "a sheet pan dinner",
            "broth",
            "garlic butter",
        ],
        "adjs": ["crispy", "slow-cooked", "caramelized", "homemade", "seasoned"],
        "verbs": ["baked", "simmered", "roasted", "whisked", "marinated"],
        "tags": ["cooking", "foodie", "recipe"],
    },
    "personal_finance": {
        "nouns": [
            "index fund",
            "interest rate",
            "the budget",
            "emergency fund",
            "mortgage",
            "dividend",
            "retirement account",
            "inflation",
            "credit score",
            "the market dip",
            "savings rate",
            "compound interest",
        ],
        "adjs": ["diversified", "tax-free", "overvalued", "bearish", "frugal"],
        "verbs": ["invested", "rebalanced", "saved", "refinanced", "hedged"],
        "tags": ["investing", "money", "finance"],
    },
    "travel": {
        "nouns": [
            "layover",
            "boarding pass",
            "the old town",
            "a night train",
            "hostel",
            "passport stamp",
            "carry-on",
            "the coastline",
            "jet lag",
            "street market",
            "window seat",
            "a day trip",
        ],
        "adjs": ["scenic", "off-season", "overbooked", "remote", "walkable"],
        "verbs": ["explored", "backpacked", "landed", "hiked", "booked"],
        "tags": ["travel", "wanderlust", "TravelTips"],
    },
    "gaming": {
        "nouns": [
            "boss fight",
            "speedrun",
            "the patch notes",
            "loot drop",
            "ranked queue",
            "controller",
            "open world",
            "save file",
            "the final level",
            "co-op mode",
            "frame rate",
            "skill tree",
        ],
        "adjs": ["nerfed", "overpowered", "pixelated", "competitive", "modded"],
        "verbs": ["respawned", "grinded", "unlocked", "streamed", "clutched"],
        "tags": ["gaming", "gamer", "esports"],
    },
    "astronomy": {
        "nouns": [
            "telescope",
            "the nebula",
            "lunar eclipse",
            "exoplanet",
            "meteor shower",
            "star chart",
            "the launch window",
            "orbit",
            "dark sky",
            "the rover",
            "light-years",
            "a comet",
        ],
        "adjs": ["orbital", "celestial", "infrared", "interstellar", "crescent"],
        "verbs": ["observed", "photographed", "launched", "tracked", "landed"],
        "tags": ["astronomy", "space", "NightSky"],
    },
    "fitness": {
        "nouns": [
            "deadlift",
            "rest day",
            "the squat rack",
            "protein shake",
            "morning run",
            "personal best",
            "mobility routine",
            "interval training",
            "the gym",
            "a 10k",
            "warm-up",
            "recovery week",
        ],
        "adjs": ["sore", "explosive", "progressive", "endurance", "lean"],
        "verbs": ["lifted", "stretched", "sprinted", "trained", "recovered"],
        "tags": ["fitness", "workout", "GymLife"],
    },
    "gardening": {
        "nouns": [
            "tomato seedlings",
            "compost",
            "raised bed",
            "the greenhouse",
            "pruning shears",
            "mulch",
            "perennials",
            "the vegetable patch",
            "aphids",
            "seed catalog",
            "potting soil",
            "a rose bush",
        ],
        "adjs": ["blooming", "organic", "overgrown", "drought-tolerant", "leafy"],
        "verbs": ["planted", "watered", "pruned", "harvested", "repotted"],
        "tags": ["gardening", "GrowYourOwn", "plants"],
    },
    "film": {
        "nouns": [
            "the director's cut",
            "box office",
            "the trailer",
            "a plot twist",
            "cinematography",
            "the sequel",
            "film festival",
            "the soundtrack",
            "opening night",
            "the script",
            "a cameo",
            "the final act",
        ],
        "adjs": ["Oscar-worthy", "underrated", "slow-burn", "animated", "overlong"],
        "verbs": ["premiered", "directed", "streamed", "reviewed", "rewatched"],
        "tags": ["movies", "film", "cinema"],
    },
    "music": {
        "nouns": [
            "the new album",
            "a guitar riff",
            "the setlist",
            "vinyl",
            "the chorus",
            "a live show",
            "the bassline",
            "the tour dates",
            "headphones",
            "the bridge",
            "an acoustic version",
            "the encore",
        ],
        "adjs": ["catchy", "remastered", "sold-out", "lo-fi", "soulful"],
        "verbs": ["released", "covered", "sampled", "performed", "produced"],
        "tags": ["music", "NowPlaying", "NewMusic"],
    },
    "pets": {
        "nouns": [
            "the puppy",
            "a rescue cat",
            "chew toy",
            "the vet",
            "litter box",
            "dog park",
            "the leash",
            "a cat tree",
            "kibble",
            "the goldfish",
            "belly rubs",
            "the groomer",
        ],
        "adjs": ["fluffy", "mischievous", "sleepy", "adopted", "house-trained"],
        "verbs": ["adopted", "walked", "groomed", "cuddled", "trained"],
        "tags": ["pets", "DogsOfTwitter", "CatsOfTwitter"],
    },
    "climate": {
        "nouns": [
            "heat wave",
            "solar panels",
            "carbon budget",
            "the wind farm",
            "sea level",
            "emissions",
            "heat pump",
            "the grid",
            "wildfire smoke",
            "a flood warning",
            "electric bus",
            "the glacier",
        ],
        "adjs": ["renewable", "net-zero", "record-breaking", "sustainable", "coastal"],
        "verbs": ["installed", "measured", "warned", "retrofitted", "emitted"],
        "tags": ["climate", "energy", "sustainability"],
    },
    "startups": {
        "nouns": [
            "seed round",
            "the pitch deck",
            "product-market fit",
            "churn",
            "the founders",
            "runway",
            "a pivot",
            "the roadmap",
            "cap table",
            "user growth",
            "the launch",
            "burn rate",
        ],
        "adjs": ["bootstrapped", "venture-backed", "pre-revenue", "scrappy", "remote-first"],
        "verbs": ["raised", "shipped", "pivoted", "hired", "launched"],
        "tags": ["startups", "founders", "buildinpublic"],
    },
    "books": {
        "nouns": [
            "the novel",
            "a paperback",
            "the last chapter",
            "book club",
            "the author",
            "a reading list",
            "the library",
            "a first edition",
            "the plot",
            "audiobook",
            "the bookstore",
            "a memoir",
        ],
        "adjs": ["dog-eared", "gripping", "translated", "bestselling", "unputdownable"],
        "verbs": ["finished", "annotated", "borrowed", "recommended", "reread"],
        "tags": ["books", "amreading", "BookTwitter"],
    },
    "basketball": {
        "nouns": [
            "three-pointer",
            "the playoffs",
            "a buzzer beater",
            "the point guard",
            "rebounds",
            "fast break",
            "free throws",
            "the draft",
            "overtime",
            "the bench",
            "slam dunk",
            "the final quarter",
        ],
        "adjs": ["clutch", "defensive", "undrafted", "all-star", "injured"],
        "verbs": ["dunked", "blocked", "drafted", "traded", "scored"],
        "tags": ["NBA", "basketball", "hoops"],
    },
}
TOPIC_NAMES: tuple[str, ...] = tuple(TOPICS)

TEMPLATES = [
    "Honestly {a} {n1} is all I can think about after today.",
    "Just {v} {n1} and now {n2} feels {a}.",
    "Hot take: {n1} is more important than {n2}.",
    "Can anyone recommend a good guide to {n1}? Asking for a friend.",
    "Spent the whole evening on {n1}. {n2} next.",
    "Nobody talks about how {a} {n1} gets in the end.",
    "Thread on {n1}, {n2} and why it matters.",
    "We {v} {n1} this morning and it was {a}.",
    "Is it just me or is {n1} underrated?",
    "Big news about {n1} today. Still processing {n2}.",
    "My week: {n1}, {n2}, and way too much coffee.",
    "Three things I learned about {n1} this year.",
    "If you care about {n1} you should see what happened with {n2}.",
    "Finally {v} {n1}. Feeling {a}.",
]
REPLY_TEMPLATES = [
    "Totally agree, {n1} was {a}.",
    "Not sure about that, {n1} is overrated.",
    "This! Especially the part about {n1}.",
    "Did you see {n1} though?",
    "Same here, we {v} {n1} last week.",
    "Great point about {n1}.",
    "I'd add {n2} to that list.",
]
FILLERS = [
    "Good morning everyone!",
    "What a week it has been.",
    "Can't believe it's already the weekend.",
    "Coffee first, opinions later.",
    "Thanks for all the kind messages today.",
    "Back online after a long day.",
]
TOXIC_PHRASES = [
    "Only idiots would disagree.",
    "What a pathetic take, seriously.",
    "People like you are the worst.",
    "Absolute garbage, delete this.",
]
LANGUAGE_INTERJECTIONS = {
    "es": ["¡Qué bueno!", "Vamos!"],
    "pt": ["Que legal!", "Bora!"],
    "fr": ["Trop bien!", "Allez!"],
    "ja": ["すごい!", "なるほど。"],
    "en": [""],
}


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(len(items)))]


def compose_text(
    rng: np.random.Generator,
    topic: int,
    language: str,
    toxic: bool,
    is_reply: bool,
    filler_share: float = 0.08,
) -> str:
    """One tweet: a template filled from the topic's vocabulary (or a topic-free filler)."""
    vocab = TOPICS[TOPIC_NAMES[topic]]
    if not is_reply and rng.random() < filler_share:
        body = _pick(rng, FILLERS)
    else:
        template = _pick(rng, REPLY_TEMPLATES if is_reply else TEMPLATES)
        first, second = rng.choice(len(vocab["nouns"]), size=2, replace=False)
        body = template.format(
            n1=vocab["nouns"][first],
            n2=vocab["nouns"][second],
            a=_pick(rng, vocab["adjs"]),
            v=_pick(rng, vocab["verbs"]),
        )
    parts = [body]
    if toxic:
        parts.append(_pick(rng, TOXIC_PHRASES))
    interjection = _pick(rng, LANGUAGE_INTERJECTIONS.get(language, [""]))
    if interjection and rng.random() < 0.5:
        parts.insert(0, interjection)
    return " ".join(parts)


def pick_hashtags(rng: np.random.Generator, topic: int, share: float = 0.3) -> list[str]:
    """Hashtags appear on a minority of tweets, so they cannot replace reading the text."""
    if rng.random() >= share:
        return []
    return [_pick(rng, TOPICS[TOPIC_NAMES[topic]]["tags"])]
