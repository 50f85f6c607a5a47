//! `iterdump()`: the core's SQL dump stream, read in batches of lines.

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::hub::{self, Conv};

type Lines = Pin<Box<dyn futures_util::Stream<Item = aiolite::Result<String>> + Send>>;

/// Lines per `next_batch()`.
const BATCH: usize = 256;

#[pyclass(frozen, module = "aiolite._aiolite")]
pub(crate) struct Dumper {
    stream: Arc<Mutex<Option<Lines>>>,
}

impl Dumper {
    pub(crate) fn new(conn: &aiolite::Connection) -> Dumper {
        Dumper {
            stream: Arc::new(Mutex::new(Some(Box::pin(conn.iterdump())))),
        }
    }
}

#[pymethods]
impl Dumper {
    /// The next lines (a list; empty at the end).
    fn next_batch(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let slot = Arc::clone(&self.stream);
        let stream = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        hub::spawn(py, async move {
            let Some(mut stream) = stream else {
                return Ok(Box::new(|py: Python<'_>| Ok(PyList::empty(py).into_any().unbind())) as Conv);
            };
            let mut lines = Vec::new();
            let mut end = false;
            while lines.len() < BATCH {
                match stream.next().await {
                    Some(Ok(line)) => lines.push(line),
                    Some(Err(e)) => return Err(e),
                    None => {
                        end = true;
                        break;
                    }
                }
            }
            if !end {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(stream);
            }
            let conv: Conv = Box::new(move |py| Ok(PyList::new(py, lines)?.into_any().unbind()));
            Ok(conv)
        })
    }
}
