"""Random node names made of two lowercase words, like ``slimy-cardinal``."""

from __future__ import annotations

import random

ADJECTIVES = (
    "amber", "bold", "brave", "breezy", "bright", "calm", "clever", "cosmic", "crisp", "curly",
    "dapper", "dizzy", "eager", "fancy", "fluffy", "frosty", "fuzzy", "gentle", "giddy", "glossy",
    "golden", "happy", "hasty", "humble", "icy", "jolly", "lucky", "mellow", "merry", "misty",
    "nimble", "noisy", "plucky", "polite", "proud", "quick", "quiet", "rapid", "rusty", "shiny",
    "silly", "sleepy", "slimy", "snappy", "sneaky", "spicy", "steady", "sunny", "swift", "witty",
)
ANIMALS = (
    "badger", "beaver", "bison", "cardinal", "cheetah", "condor", "coyote", "crane", "dingo",
    "dolphin", "eagle", "falcon", "ferret", "gecko", "gibbon", "heron", "ibis", "iguana", "jackal",
    "jaguar", "koala", "lemur", "lizard", "llama", "lynx", "magpie", "marmot", "marten", "moose",
    "narwhal", "ocelot", "octopus", "osprey", "otter", "panda", "pelican", "puffin", "quokka",
    "raccoon", "raven", "salmon", "seal", "sparrow", "tapir", "toucan", "turtle", "walrus",
    "weasel", "wombat", "yak",
)


def random_name(rng: random.Random | None = None) -> str:
    """Return a fresh ``adjective-animal`` name."""
    rng = rng or random.SystemRandom()
    return f"{rng.choice(ADJECTIVES)}-{rng.choice(ANIMALS)}"
