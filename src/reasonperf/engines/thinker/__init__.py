"""tiny-thinker and tiny-instruct: small Llama models trained here on procedural problems.

``traces`` renders what each model is taught to write, ``tokenizer`` fits a tokenizer to
that text, ``train`` trains and exports a model, ``shipped`` finds and verifies the
weights committed under ``weights/``.
"""

from __future__ import annotations

THINKER = "tiny-thinker"
INSTRUCT = "tiny-instruct"
MODEL_NAMES = (THINKER, INSTRUCT)
