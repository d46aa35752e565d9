//! The C project's v1 keyword-spotting and MNIST files (c-project.md §5).
//! The header does not say which family a file holds: the reading that makes
//! the file size come out exact decides.

use crate::error::Result;
use crate::model::classifier::ClassifierModel;
use crate::model::Backing;
use std::sync::Arc;

/// `Some` when the v1 file at `path` is a classifier; `None` for a language model.
pub fn try_load(_path: &str, _backing: &Arc<Backing>) -> Result<Option<ClassifierModel>> {
    Ok(None)
}
