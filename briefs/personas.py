"""The persona taxonomy and the content categories the tools filter by.

A persona is chosen by deterministic keyword scoring of the brand's request (brand, product, goal,
audience); ties go to the earlier persona in `PERSONAS`. A category is a set of hashtags, because
hashtags are what our events record about content.
"""

import re
from dataclasses import dataclass

CATEGORIES: dict[str, tuple[str, ...]] = {
    "beauty": ("#skincare", "#makeup", "#beauty", "#ootd"),
    "fashion": ("#ootd", "#fashion", "#style"),
    "food": ("#foodie", "#streetfood", "#recipe"),
    "fitness": ("#fitness", "#workout", "#gym"),
    "tech": ("#gadgets", "#unboxing", "#tech"),
    "travel": ("#travel", "#monsoon", "#wanderlust"),
    "festive": ("#diwali", "#festive", "#gifting"),
}


def category_tags(category: str) -> list[str]:
    """The hashtags of a known category; an unknown one is taken as a single hashtag."""
    key = category.strip().lower().lstrip("#")
    if key in CATEGORIES:
        return list(CATEGORIES[key])
    return [f"#{key}"] if key else []


@dataclass(frozen=True, slots=True)
class Persona:
    id: str
    label: str
    description: str
    keywords: tuple[str, ...]
    categories: tuple[str, ...]

    @property
    def hashtags(self) -> list[str]:
        tags: list[str] = []
        for c in self.categories:
            tags.extend(t for t in CATEGORIES[c] if t not in tags)
        return tags


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "skincare_enthusiast",
        "Skincare enthusiast",
        "Follows routines, reads ingredient lists, saves tutorials and before/after posts.",
        ("skin", "skincare", "serum", "moistur", "cream", "beauty", "glow", "makeup", "spf"),
        ("beauty",),
    ),
    Persona(
        "style_seeker",
        "Style seeker",
        "Looks for outfit ideas and trends; responds to try-ons and lookbooks.",
        ("fashion", "outfit", "style", "wear", "dress", "shoe", "sneaker", "apparel", "ootd"),
        ("fashion",),
    ),
    Persona(
        "foodie_explorer",
        "Foodie explorer",
        "Discovers restaurants, snacks and recipes; shares finds with friends.",
        ("food", "snack", "recipe", "restaurant", "eat", "drink", "coffee", "taste", "cook"),
        ("food",),
    ),
    Persona(
        "fitness_motivated",
        "Fitness-motivated achiever",
        "Trains regularly, follows challenges and progress stories, values proof.",
        ("fitness", "gym", "workout", "protein", "run", "sport", "health", "yoga", "training"),
        ("fitness",),
    ),
    Persona(
        "tech_early_adopter",
        "Tech early adopter",
        "Watches unboxings and reviews before buying; compares specs.",
        ("tech", "phone", "laptop", "gadget", "app", "device", "headphone", "camera", "gaming"),
        ("tech",),
    ),
    Persona(
        "experience_traveller",
        "Experience traveller",
        "Plans trips from creators' itineraries; saves places and tips.",
        ("travel", "trip", "hotel", "flight", "holiday", "vacation", "tour", "luggage"),
        ("travel",),
    ),
    Persona(
        "festive_shopper",
        "Festive shopper",
        "Buys gifts and seasonal offers; responds to countdowns and gift guides.",
        ("diwali", "festive", "festival", "gift", "holiday sale", "christmas", "eid", "season"),
        ("festive",),
    ),
)

GENERAL = Persona(
    "mainstream_browser",
    "Mainstream browser",
    "A broad audience with no dominant interest in the request; reached through trending topics.",
    (),
    tuple(CATEGORIES),
)

_WORD = re.compile(r"[a-z0-9]+")


def classify(*texts: str | None) -> tuple[Persona, dict[str, int]]:
    """The best-scoring persona for the texts and every persona's score (keyword hits).

    A keyword matches a word that starts with it, so `moistur` matches `moisturiser`. No hit at
    all gives `GENERAL`.
    """
    words = [w for t in texts if t for w in _WORD.findall(t.lower())]
    joined = " ".join(words)
    scores: dict[str, int] = {}
    for persona in PERSONAS:
        score = 0
        for kw in persona.keywords:
            if " " in kw:
                score += joined.count(kw)
            else:
                score += sum(1 for w in words if w.startswith(kw))
        scores[persona.id] = score
    best = max(PERSONAS, key=lambda p: scores[p.id])  # max keeps the first of equal scores
    return (best if scores[best.id] > 0 else GENERAL), scores


def by_id(persona_id: str) -> Persona | None:
    key = persona_id.strip().lower()
    for persona in (*PERSONAS, GENERAL):
        if persona.id == key or persona.label.lower() == key:
            return persona
    return None
