"""umT5-XXL text encoder (Wan's prompt encoder) and its tokenizer."""
from .config import UMT5_XXL, UMT5Config
from .encoder import TextEncoder
from .loader import load_text_encoder
from .tokenizer import Tokenizer, TokenizerError, clean_prompt

__all__ = ["UMT5_XXL", "UMT5Config", "TextEncoder", "Tokenizer", "TokenizerError", "clean_prompt", "load_text_encoder"]
