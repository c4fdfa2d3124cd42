"""`site`: a static-site generator for pages mixing LLM-written and template-rendered components."""

__version__ = "0.1.0"
