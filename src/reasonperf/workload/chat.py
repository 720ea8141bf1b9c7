"""A general chat workload: short everyday requests with no gold answer.

It is the "LLM" side of the LLM-vs-reasoning-LLM comparison: the same engine serving
requests that need no long chain of thought. The fixed prompts below were written for this
project; when more are asked for, a seeded generator combines task and topic templates.
"""

from __future__ import annotations

import numpy as np

from reasonperf.errors import UsageError
from reasonperf.records import Problem

# (category, prompt); written for reasonperf, no third-party text.
PROMPTS: tuple[tuple[str, str], ...] = (
    ("writing", "Write a four-line poem about a lighthouse keeper's last night on duty."),
    ("writing", "Write a friendly two-sentence reminder asking neighbours to sort recycling."),
    ("writing", "Draft a short thank-you note to a colleague who covered my shift."),
    ("writing", "Write a product description for a reusable water bottle in 50 words."),
    ("writing", "Write the opening paragraph of a mystery set in a quiet mountain village."),
    ("writing", "Compose a haiku about the first snowfall of winter."),
    ("writing", "Write a polite email declining a meeting invitation for next Tuesday."),
    ("writing", "Write a short bedtime story about a turtle who wants to fly."),
    ("writing", "Suggest five names for a small bakery that specialises in sourdough."),
    ("writing", "Write a limerick about a cat who refuses to leave a cardboard box."),
    ("writing", "Write a two-paragraph cover letter opening for a junior data analyst role."),
    ("writing", "Rewrite this sentence to sound more formal: 'We can't make it, sorry.'"),
    ("writing", "Write a toast for a friend's tenth work anniversary, under 80 words."),
    ("writing", "Write a short dialogue between a robot and a gardener about patience."),
    ("writing", "Write a catchy slogan for a neighbourhood cycling club."),
    ("explanation", "Explain how a rainbow forms, in three sentences."),
    ("explanation", "Explain the difference between weather and climate to a ten-year-old."),
    ("explanation", "What does a compiler do? Keep it short."),
    ("explanation", "Explain why the sky looks blue during the day and red at sunset."),
    ("explanation", "Describe how vaccines train the immune system, in plain language."),
    ("explanation", "What is the difference between a virus and a bacterium?"),
    ("explanation", "Explain what compound interest is with a simple example."),
    ("explanation", "Why do we have leap years?"),
    ("explanation", "Explain what an API is using a restaurant analogy."),
    ("explanation", "How does a refrigerator keep food cold?"),
    ("explanation", "Explain the idea of supply and demand in one paragraph."),
    ("explanation", "What is photosynthesis and why does it matter?"),
    ("explanation", "Explain what a hash table is and when to use one."),
    ("explanation", "Why does ice float on water?"),
    ("explanation", "Describe how GPS works in a few sentences."),
    ("summarisation", "Summarise the main benefits of regular exercise in three bullet points."),
    ("summarisation", "Give a one-paragraph summary of how the water cycle works."),
    ("summarisation", "Summarise the pros and cons of working from home."),
    ("summarisation", "In two sentences, summarise why sleep is important for memory."),
    ("summarisation", "Summarise the key ideas of version control for a new programmer."),
    ("summarisation", "Give a short overview of how electric cars differ from petrol cars."),
    ("summarisation", "Summarise the main steps of the scientific method."),
    ("summarisation", "List the key points to remember when giving a short presentation."),
    ("summarisation", "Summarise the trade-offs between renting and buying a home."),
    ("summarisation", "Summarise what a healthy breakfast usually includes."),
    ("summarisation", "Briefly summarise the purpose of a city's public library."),
    ("summarisation", "Summarise in three bullets why backups matter for a small business."),
    ("planning", "Plan a relaxed three-day weekend trip to a coastal town."),
    ("planning", "Suggest a weekly study plan for learning basic Spanish in two months."),
    ("planning", "Create a simple packing list for a two-night camping trip."),
    ("planning", "Plan a vegetarian dinner menu for six guests."),
    ("planning", "Outline a 30-minute beginner workout I can do at home."),
    ("planning", "Draft an agenda for a one-hour team kickoff meeting."),
    ("planning", "Plan a birthday party for a seven-year-old on a small budget."),
    ("planning", "Suggest a morning routine for someone who wants to read more."),
    ("planning", "Make a checklist for moving into a new apartment."),
    ("planning", "Plan a one-day itinerary for a first visit to a large museum."),
    ("planning", "Outline the steps to start a small vegetable garden on a balcony."),
    ("planning", "Suggest a plan to reduce screen time over four weeks."),
    ("advice", "How can I keep houseplants alive while travelling for two weeks?"),
    ("advice", "Give me three tips for writing clearer emails."),
    ("advice", "What should I consider when choosing a first programming language?"),
    ("advice", "How do I politely ask my manager for feedback?"),
    ("advice", "Suggest ways to stay focused while working in a noisy place."),
    ("advice", "What are good habits for keeping a tidy kitchen?"),
)

_TASKS: tuple[tuple[str, str], ...] = (
    ("writing", "Write a short poem about {topic}."),
    ("writing", "Write a two-sentence story involving {topic}."),
    ("explanation", "Explain {topic} to a curious teenager in a few sentences."),
    ("explanation", "What are three surprising facts about {topic}?"),
    ("summarisation", "Summarise the pros and cons of {topic} in bullet points."),
    ("summarisation", "Give a one-paragraph overview of {topic}."),
    ("planning", "Plan a short weekend project related to {topic}."),
    ("planning", "Make a beginner's checklist for getting started with {topic}."),
    ("advice", "Give me three practical tips about {topic}."),
)

_TOPICS: tuple[str, ...] = (
    "city gardening",
    "public transport",
    "rainy days",
    "board games",
    "bread baking",
    "bird watching",
    "solar panels",
    "learning the piano",
    "night skies",
    "old maps",
    "tea ceremonies",
    "mountain hiking",
    "recycling",
    "volcanoes",
    "bicycles",
    "honeybees",
    "chess openings",
    "museums",
    "street food",
    "lighthouses",
    "coral reefs",
    "handwriting",
    "podcasts",
    "winter sports",
    "paper airplanes",
)


def generate(n: int, seed: int = 0) -> list[Problem]:
    """``n`` chat problems: the fixed prompts first, then seeded template combinations."""
    if n < 1:
        raise UsageError(f"chat option 'n' must be >= 1 (got {n})")
    items = list(PROMPTS[:n])
    if n > len(items):
        rng = np.random.default_rng(seed)
        seen = {p for _, p in PROMPTS}
        # Unique combinations first; repeats only once all task x topic pairs are used.
        pairs = [(t, topic) for t in _TASKS for topic in _TOPICS]
        order = rng.permutation(len(pairs))
        i = 0
        while len(items) < n:
            (category, template), topic = pairs[int(order[i % len(order)])]
            text = template.format(topic=topic)
            if i >= len(order) or text not in seen:
                items.append((category, text))
                seen.add(text)
            i += 1
    return [
        Problem(
            dataset="chat",
            problem_id=f"chat-{i:05d}",
            prompt=text,
            gold=None,
            grader=None,
            domain="chat",
            meta={"category": category},
        )
        for i, (category, text) in enumerate(items)
    ]
