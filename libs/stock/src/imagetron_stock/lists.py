"""The curated names and phrases stock agencies refuse in titles, keywords and prompts.

One name per entry, lower case; matched whole-word, case- and accent-insensitively, with a
space, hyphen or dot between the parts (see `rules`). The lists hold what most often
appears in image prompts; they are not exhaustive, and words that are also ordinary English
("apple", "amazon", "turner", "shell", "joker", "who") are left out on purpose, because a
false alarm on every still life would train artists to ignore the check. Extend them here;
the tests find every entry in a sentence.
"""

from __future__ import annotations

#: Artists whose names are common in image prompts ("in the style of ...").
ARTISTS: frozenset[str] = frozenset(
    {
        "alphonse mucha",
        "andy warhol",
        "ansel adams",
        "annie leibovitz",
        "artgerm",
        "banksy",
        "basquiat",
        "beeple",
        "caravaggio",
        "claude monet",
        "craig mullins",
        "edward hopper",
        "frida kahlo",
        "georgia o'keeffe",
        "greg rutkowski",
        "gustav klimt",
        "h.r. giger",
        "hayao miyazaki",
        "hieronymus bosch",
        "hokusai",
        "jackson pollock",
        "james gurney",
        "johannes vermeer",
        "keith haring",
        "leonardo da vinci",
        "magritte",
        "mc escher",
        "m.c. escher",
        "michelangelo",
        "monet",
        "mondrian",
        "norman rockwell",
        "pablo picasso",
        "picasso",
        "rembrandt",
        "rene magritte",
        "roy lichtenstein",
        "salvador dali",
        "simon stalenhag",
        "thomas kinkade",
        "tim burton",
        "van gogh",
        "vincent van gogh",
        "wassily kandinsky",
        "kandinsky",
        "wes anderson",
        "wlop",
        "yayoi kusama",
        "zdzislaw beksinski",
        "beksinski",
    }
)

#: Brands, trademarks and franchises (other people's IP).
BRANDS: frozenset[str] = frozenset(
    {
        "adidas",
        "bmw",
        "chanel",
        "coca-cola",
        "coca cola",
        "dc comics",
        "disney",
        "dreamworks",
        "ferrari",
        "fortnite",
        "gucci",
        "hogwarts",
        "ikea",
        "iphone",
        "ipad",
        "lamborghini",
        "legend of zelda",
        "lego",
        "louis vuitton",
        "macbook",
        "marvel comics",
        "marvel studios",
        "mcdonald's",
        "mcdonalds",
        "mercedes-benz",
        "minecraft",
        "netflix",
        "nike",
        "nintendo",
        "octane render",
        "pepsi",
        "pixar",
        "playstation",
        "pokemon",
        "porsche",
        "red bull",
        "rolex",
        "star wars",
        "starbucks",
        "studio ghibli",
        "tesla",
        "unreal engine",
        "xbox",
        "youtube",
    }
)

#: Real people, living or recently so, who are often asked for by name.
REAL_PEOPLE: frozenset[str] = frozenset(
    {
        "albert einstein",
        "barack obama",
        "beyonce",
        "bill gates",
        "brad pitt",
        "cristiano ronaldo",
        "donald trump",
        "elon musk",
        "emma watson",
        "joe biden",
        "keanu reeves",
        "kim kardashian",
        "king charles",
        "lady gaga",
        "leonardo dicaprio",
        "lionel messi",
        "marilyn monroe",
        "mark zuckerberg",
        "michael jackson",
        "oprah winfrey",
        "pope francis",
        "queen elizabeth",
        "rihanna",
        "scarlett johansson",
        "steve jobs",
        "taylor swift",
        "tom cruise",
        "vladimir putin",
    }
)

#: Characters from films, comics, games and books still under copyright.
FICTIONAL_CHARACTERS: frozenset[str] = frozenset(
    {
        "barbie",
        "bart simpson",
        "batman",
        "bugs bunny",
        "captain america",
        "darth vader",
        "deadpool",
        "donald duck",
        "gandalf",
        "godzilla",
        "harry potter",
        "hello kitty",
        "homer simpson",
        "indiana jones",
        "iron man",
        "james bond",
        "lara croft",
        "luke skywalker",
        "master chief",
        "mickey mouse",
        "optimus prime",
        "pikachu",
        "scooby-doo",
        "shrek",
        "sonic the hedgehog",
        "spider-man",
        "spiderman",
        "spongebob",
        "super mario",
        "superman",
        "thanos",
        "wonder woman",
        "yoda",
    }
)

#: Government agencies and bodies whose names and insignia stock sites refuse.
GOVERNMENT_AGENCIES: frozenset[str] = frozenset(
    {
        "cia",
        "department of defense",
        "dhs",
        "european commission",
        "fbi",
        "fema",
        "homeland security",
        "interpol",
        "kgb",
        "lapd",
        "mi5",
        "mi6",
        "nasa",
        "nato",
        "nsa",
        "nypd",
        "pentagon",
        "secret service",
        "u.s. army",
        "united nations",
        "us army",
        "us navy",
    }
)

#: Words and events that make an image pass for news: generated images must not imply that
#: a real, newsworthy event happened.
NEWS_EVENTS: frozenset[str] = frozenset(
    {
        "9/11",
        "breaking news",
        "capitol riot",
        "covid-19 pandemic",
        "election night",
        "gaza war",
        "hurricane katrina",
        "news footage",
        "news photo",
        "photojournalism",
        "press photo",
        "september 11",
        "war in ukraine",
    }
)

#: Phrases that contain a listed name but are ordinary craft vocabulary, not a reference to
#: the person ("Rembrandt lighting" is a portrait lighting set-up).
TERMS_OF_ART: frozenset[str] = frozenset({"rembrandt lighting"})
