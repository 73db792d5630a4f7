//! `integrabner` for Python: the engine of the CLI and the browser worker,
//! loaded from a verified bundle (`integrabner_train::bundle_dir`), behind
//! one class. A prediction crosses into Python as the very JSON object
//! `integrabner predict` writes (serialized here, parsed by Python's `json`),
//! so the two can be compared id by id. The interpreter lock is released
//! while the models run, so Python threads and Ray actors label in parallel.

use anyhow::{Context, Result};
use integrabner_core::cases::CaseLine;
use integrabner_core::image_input::{read, Radiograph, MAX_IMAGE_BYTES};
use integrabner_models::engine::Engine;
use integrabner_train::bundle_dir;
use integrabner_train::files::read_regular;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use std::path::PathBuf;

/// The id of a case `predict` is given none for.
const UNNAMED: &str = "unnamed";

/// Where the bundle is looked for when none is named, in this order.
const MODELS_ENV: &str = "INTEGRABNER_MODELS";

/// A labeler over one model bundle: the rules, the report model, the image
/// model and the fusion model, every file checked against the bundle's
/// manifest.json before use.
///
/// Labeler(models=None)
///
/// models: the bundle directory (the repository's models/, or any
/// directory `integrabner export` wrote). When None: $INTEGRABNER_MODELS,
/// then the bundle installed with the package, then ./models.
///
/// Raises ValueError when the bundle is missing, damaged or inconsistent.
#[pyclass(module = "integrabner", frozen)]
struct Labeler {
    engine: Engine,
    models: PathBuf,
    version: String,
}

/// One case's inputs, read (images decoded) while the lock is held only
/// for taking them out of Python objects.
struct Case {
    id: String,
    text: String,
    views: Vec<Radiograph>,
}

/// An image argument: a path to read, or the file's bytes.
enum ImageInput {
    Path(PathBuf),
    Bytes(Vec<u8>),
}

impl ImageInput {
    fn extract(object: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(bytes) = object.cast::<PyBytes>() {
            return Ok(Self::Bytes(bytes.as_bytes().to_vec()));
        }
        match object.extract::<PathBuf>() {
            Ok(path) => Ok(Self::Path(path)),
            Err(_) => Err(PyTypeError::new_err(
                "image: expected a path (str or os.PathLike) or the file's bytes",
            )),
        }
    }

    fn decode(&self) -> Result<Radiograph> {
        match self {
            Self::Path(path) => {
                let bytes = read_regular(path, MAX_IMAGE_BYTES as u64)?;
                read(&bytes).with_context(|| format!("{}", path.display()))
            }
            Self::Bytes(bytes) => Ok(read(bytes).context("the image bytes")?),
        }
    }
}

/// `image=` as one image or a list of views (frontal, lateral).
fn image_inputs(image: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<ImageInput>> {
    match image {
        None => Ok(Vec::new()),
        Some(object) if object.is_none() => Ok(Vec::new()),
        Some(object) => match object.cast::<PyList>() {
            Ok(list) => list.iter().map(|o| ImageInput::extract(&o)).collect(),
            Err(_) => Ok(vec![ImageInput::extract(object)?]),
        },
    }
}

fn value_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

/// The bundle to load when the caller names none.
fn default_models(py: Python<'_>) -> PyResult<PathBuf> {
    if let Some(dir) = std::env::var_os(MODELS_ENV) {
        return Ok(dir.into());
    }
    let installed = py
        .import("integrabner")?
        .getattr("__file__")?
        .extract::<PathBuf>()?
        .parent()
        .map(|p| p.join("models"));
    let candidates = installed.into_iter().chain([PathBuf::from("models")]);
    let mut tried = Vec::new();
    for dir in candidates {
        if dir.join("manifest.json").is_file() {
            return Ok(dir);
        }
        tried.push(dir.display().to_string());
    }
    Err(PyValueError::new_err(format!(
        "no model bundle found: ${MODELS_ENV} is not set and neither {} has a manifest.json; pass Labeler(models=\"path/to/models\")",
        tried.join(" nor ")
    )))
}

impl Labeler {
    /// The prediction of a case as `predict` writes it (one JSON object).
    fn predict_json(&self, case: &Case, scores: bool) -> Result<String> {
        let analysis = self
            .engine
            .analyse(&case.id, &case.text, &case.views)
            .with_context(|| format!("case {}", case.id))?;
        Ok(serde_json::to_string(
            &self.engine.prediction(analysis, scores),
        )?)
    }
}

/// A batch item read as a JSONL line is (`integrabner predict` input):
/// through Python's `json`, then the one reading of a case line.
fn batch_case(
    json: &Bound<'_, PyModule>,
    item: &Bound<'_, PyAny>,
    index: usize,
) -> Result<CaseLine, String> {
    let line: String = json
        .call_method1("dumps", (item,))
        .and_then(|s| s.extract())
        .map_err(|e| format!("case {index}: not a JSON object ({e})"))?;
    CaseLine::parse(&line).map_err(|e| format!("case {index}: {e}"))
}

/// What happens to a case of a batch that cannot be analysed.
#[derive(Clone, Copy, PartialEq)]
enum OnError {
    Raise,
    Report,
}

#[pymethods]
impl Labeler {
    #[new]
    #[pyo3(signature = (models=None))]
    fn new(py: Python<'_>, models: Option<PathBuf>) -> PyResult<Self> {
        let models = match models {
            Some(dir) => dir,
            None => default_models(py)?,
        };
        let loaded = py.detach(|| {
            let manifest = bundle_dir::read_manifest(&models)?;
            Ok::<_, anyhow::Error>((bundle_dir::load_engine(&models)?, manifest.version))
        });
        let (engine, version) = loaded.map_err(value_error)?;
        Ok(Self {
            engine,
            models,
            version,
        })
    }

    /// The bundle directory this labeler was loaded from.
    #[getter]
    fn models(&self) -> PathBuf {
        self.models.clone()
    }

    /// The bundle's version (from its manifest.json), as the page shows it.
    #[getter]
    fn bundle_version(&self) -> &str {
        &self.version
    }

    /// Which models the bundle has: a subset of "report", "image", "fusion"
    /// (the rules are always there).
    #[getter]
    fn model_kinds(&self) -> Vec<&'static str> {
        let e = &self.engine;
        [
            ("report", e.report.is_some()),
            ("image", e.image.is_some()),
            ("fusion", e.fusion.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, there)| there.then_some(name))
        .collect()
    }

    fn __repr__(&self) -> String {
        format!(
            "Labeler(models={:?}, bundle_version={:?})",
            self.models.display().to_string(),
            self.version
        )
    }

    /// predict(text=None, image=None, id=None, scores=False) -> dict
    ///
    /// Analyses one case, a report, images, or both, and returns the object
    /// `integrabner predict` writes for it: "id", "findings" (with
    /// assertion, confidence, source and qualifiers), "entities" (with char
    /// spans), and "heat_maps" for image findings.
    ///
    /// image: a path, the file's bytes (PNG or JPEG), or a list of them
    /// (frontal and lateral views). id: the case's id in the result
    /// ("unnamed" when None). scores: add "scores", every concept's
    /// probability (for ROC curves).
    ///
    /// Raises ValueError when the case cannot be analysed (an empty or
    /// overlong report, an unreadable image), with the reason.
    #[pyo3(signature = (text=None, image=None, id=None, scores=false))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        text: Option<String>,
        image: Option<&Bound<'py, PyAny>>,
        id: Option<&str>,
        scores: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let images = image_inputs(image)?;
        let json = py.detach(|| {
            let views = images
                .iter()
                .map(ImageInput::decode)
                .collect::<Result<_>>()?;
            let case = Case {
                id: id.unwrap_or(UNNAMED).to_string(),
                text: text.unwrap_or_default(),
                views,
            };
            self.predict_json(&case, scores)
        });
        py.import("json")?
            .call_method1("loads", (json.map_err(value_error)?,))
    }

    /// predict_batch(cases, scores=False, errors="raise") -> list[dict]
    ///
    /// Analyses many cases, in order, with the lock released for the whole
    /// batch. Each case is a dict shaped like a line of predict's JSONL
    /// input: {"id": str or int, "text"?: str, "image"?: path,
    /// "images"?: [path]}; an unknown key is refused (a misspelt "txt" is
    /// not a case without a report).
    ///
    /// errors: "raise" (the default) raises ValueError at the first case
    /// that cannot be analysed, naming it; "report" puts
    /// {"id": ..., "error": message} in its place and goes on, as a batch
    /// job over a whole archive wants.
    #[pyo3(signature = (cases, scores=false, errors="raise"))]
    fn predict_batch<'py>(
        &self,
        py: Python<'py>,
        cases: &Bound<'py, PyAny>,
        scores: bool,
        errors: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let on_error = match errors {
            "raise" => OnError::Raise,
            "report" => OnError::Report,
            other => {
                return Err(PyValueError::new_err(format!(
                    "errors={other:?}: expected \"raise\" or \"report\""
                )))
            }
        };
        let json = py.import("json")?;
        let lines: Vec<(String, Result<CaseLine, String>)> = cases
            .try_iter()?
            .enumerate()
            .map(|(index, item)| {
                let item = item?;
                let line = batch_case(&json, &item, index);
                let id = match &line {
                    Ok(CaseLine { id: Some(id), .. }) => id.clone(),
                    _ => format!("#{index}"),
                };
                let line = line.and_then(|l| match l.id {
                    Some(_) => Ok(l),
                    None => Err(format!("case {index}: the case has no \"id\"")),
                });
                Ok((id, line))
            })
            .collect::<PyResult<_>>()?;
        let results: Vec<(String, Result<String>)> = py.detach(|| {
            let mut results = Vec::with_capacity(lines.len());
            for (id, line) in lines {
                let result = line.map_err(anyhow::Error::msg).and_then(|line| {
                    let views = line
                        .images
                        .iter()
                        .map(|p| ImageInput::Path(p.into()).decode())
                        .collect::<Result<_>>()
                        .with_context(|| format!("case {id}"))?;
                    let case = Case {
                        id: id.clone(),
                        text: line.text,
                        views,
                    };
                    self.predict_json(&case, scores)
                });
                let failed = result.is_err();
                results.push((id, result));
                if failed && on_error == OnError::Raise {
                    break;
                }
            }
            results
        });
        let out = PyList::empty(py);
        for (id, result) in results {
            match result {
                Ok(line) => out.append(json.call_method1("loads", (line,))?)?,
                Err(e) if on_error == OnError::Raise => return Err(value_error(e)),
                Err(e) => {
                    let failed = PyDict::new(py);
                    failed.set_item("id", id)?;
                    failed.set_item("error", format!("{e:#}"))?;
                    out.append(failed)?;
                }
            }
        }
        Ok(out)
    }
}

/// The module's one entry: `integrabner.Labeler`.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Labeler>()?;
    Ok(())
}
