"""A what-if simulator of a serving engine, calibrated from measured runs.

``model`` holds the inputs and outputs, ``steptime`` the step-time models, ``core`` the
event-driven vLLM V1 core (decode runs in closed form), ``policies`` the registry that
names the scheduling policies. See docs/simulator.md.
"""
