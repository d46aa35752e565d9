//! GGUF reader (arch `mamba`). PLACEHOLDER.
