//! The C project v1 "Mamb" model files. PLACEHOLDER.
