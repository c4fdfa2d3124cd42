"""Loopback fake LLM servers for tests (standard library HTTP servers on 127.0.0.1).

    from tests.fakes import FakeOllama, FakeGroq, Reply, BatchPlan

See base.py / ollama.py / groq.py for the scripting API.
"""

from .base import Call, FakeServer, Reply
from .groq import DEFAULT_GROQ_MODELS, BatchPlan, FakeGroq
from .ollama import FakeOllama, normalize_model_name
from .openai import ALL_FORMATS, LLAMA_CPP_PYTHON, LM_STUDIO, FakeOpenAI

__all__ = [
    "ALL_FORMATS",
    "LLAMA_CPP_PYTHON",
    "LM_STUDIO",
    "FakeOpenAI",
    "BatchPlan",
    "Call",
    "DEFAULT_GROQ_MODELS",
    "FakeGroq",
    "FakeOllama",
    "FakeServer",
    "Reply",
    "normalize_model_name",
]
