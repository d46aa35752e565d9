//! GGUF reader (arch `mamba`). PLACEHOLDER.
use crate::error::{Error, Result};
use crate::model::{Backing, Model};
use std::sync::Arc;
pub fn load(path: &str, _backing: Arc<Backing>) -> Result<Model> {
    Err(Error::unsupported(format!(
        "{path}: GGUF not supported yet"
    )))
}
