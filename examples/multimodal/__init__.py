"""The reference image+text model: CLIP-style vision encoder, MiniLM text encoder, fusion catalog."""
