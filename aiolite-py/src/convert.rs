//! Conversions between Python objects and aiolite values, rows and errors, done on the event
//! loop's thread (the worker never touches Python for plain SQL).

use std::borrow::Cow;
use std::sync::Arc;

use aiolite::params::ParamValues;
use aiolite::{Column, Error, Row, Value};
use pyo3::exceptions::{PyOverflowError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};

use crate::sqltext;

/// Python's `sqlite3` objects the front end reuses: its exception classes, `Row`, adapters.
pub(crate) struct Sqlite3 {
    pub(crate) database_error: Py<PyType>,
    pub(crate) operational_error: Py<PyType>,
    pub(crate) integrity_error: Py<PyType>,
    pub(crate) programming_error: Py<PyType>,
    pub(crate) interface_error: Py<PyType>,
    pub(crate) internal_error: Py<PyType>,
    pub(crate) data_error: Py<PyType>,
    pub(crate) not_supported_error: Py<PyType>,
    pub(crate) adapters: Py<PyDict>,
    pub(crate) converters: Py<PyDict>,
    pub(crate) prepare_protocol: Py<PyAny>,
    pub(crate) str_type: Py<PyType>,
    pub(crate) bytes_type: Py<PyType>,
}

static SQLITE3: PyOnceLock<Sqlite3> = PyOnceLock::new();

pub(crate) fn sqlite3(py: Python<'_>) -> PyResult<&Sqlite3> {
    SQLITE3.get_or_try_init(py, || {
        let m = py.import("sqlite3")?;
        let ty = |name: &str| -> PyResult<Py<PyType>> { Ok(m.getattr(name)?.cast_into::<PyType>()?.unbind()) };
        Ok(Sqlite3 {
            database_error: ty("DatabaseError")?,
            operational_error: ty("OperationalError")?,
            integrity_error: ty("IntegrityError")?,
            programming_error: ty("ProgrammingError")?,
            interface_error: ty("InterfaceError")?,
            internal_error: ty("InternalError")?,
            data_error: ty("DataError")?,
            not_supported_error: ty("NotSupportedError")?,
            adapters: m.getattr("adapters")?.cast_into::<PyDict>()?.unbind(),
            converters: m.getattr("converters")?.cast_into::<PyDict>()?.unbind(),
            prepare_protocol: m.getattr("PrepareProtocol")?.unbind(),
            str_type: py.get_type::<PyString>().unbind(),
            bytes_type: py.get_type::<PyBytes>().unbind(),
        })
    })
}

/// The `sqlite3` exception for a SQLite result code: the class by primary code as in CPython's
/// `Modules/_sqlite/util.c`, with `sqlite_errorcode` (extended) and `sqlite_errorname`.
pub(crate) fn sqlite_exc(py: Python<'_>, extended_code: i32, message: String) -> PyErr {
    let s = match sqlite3(py) {
        Ok(s) => s,
        Err(err) => return err,
    };
    let cls = match extended_code & 0xff {
        2 | 12 => &s.internal_error,
        7 => return pyo3::exceptions::PyMemoryError::new_err(message),
        1 | 3..=6 | 8..=10 | 13..=17 => &s.operational_error,
        11 => &s.database_error,
        18 => &s.data_error,
        19 | 20 => &s.integrity_error,
        21 | 25 => &s.interface_error,
        _ => &s.database_error,
    };
    let err = exc(py, cls, message);
    let value = err.value(py);
    let _ = value.setattr("sqlite_errorcode", extended_code);
    let _ = value.setattr("sqlite_errorname", crate::errnames::error_name(extended_code));
    err
}

/// Raise `cls(message)`.
pub(crate) fn exc(py: Python<'_>, cls: &Py<PyType>, message: impl Into<String>) -> PyErr {
    let message: String = message.into();
    match cls.bind(py).call1((message,)) {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

pub(crate) fn programming_error(py: Python<'_>, message: impl Into<String>) -> PyErr {
    match sqlite3(py) {
        Ok(s) => exc(py, &s.programming_error, message),
        Err(e) => e,
    }
}

/// The `sqlite3` exception for an aiolite error, as CPython's `_pysqlite_seterror` chooses it
/// (by primary result code), with `sqlite_errorcode` / `sqlite_errorname` set.
pub(crate) fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let s = match sqlite3(py) {
        Ok(s) => s,
        Err(err) => return err,
    };
    match e {
        Error::Sqlite {
            extended_code, message, ..
        } => sqlite_exc(py, extended_code, message),
        Error::Closed => exc(py, &s.programming_error, "Cannot operate on a closed database."),
        Error::ParameterCount { expected, given, .. } => exc(
            py,
            &s.programming_error,
            format!(
                "Incorrect number of bindings supplied. The current statement uses {expected}, and there are {given} supplied."
            ),
        ),
        Error::ParameterName { message, .. } => {
            let m = match message.strip_prefix("no value given for parameter ") {
                Some(name) => format!("You did not supply a value for binding parameter {name}."),
                None => message,
            };
            exc(py, &s.programming_error, m)
        }
        Error::MultipleStatements { .. } => exc(
            py,
            &s.programming_error,
            "You can only execute one statement at a time.",
        ),
        Error::StatementTimeout { .. } => {
            let err = exc(py, &s.operational_error, "interrupted");
            let _ = err.value(py).setattr("sqlite_errorcode", 9);
            let _ = err.value(py).setattr("sqlite_errorname", "SQLITE_INTERRUPT");
            err
        }
        Error::InvalidUtf8 { column } => exc(
            py,
            &s.operational_error,
            format!("Could not decode to UTF-8 column '{column}'"),
        ),
        Error::QueueFull => exc(py, &s.operational_error, "the connection's queue is full"),
        Error::InvalidArgument { message } => exc(py, &s.programming_error, message),
        Error::Unsupported { message } => exc(py, &s.not_supported_error, message),
        Error::Panicked { message } => exc(py, &s.internal_error, format!("aiolite: internal panic: {message}")),
        other => exc(py, &s.database_error, other.to_string()),
    }
}

/// How `TEXT` values become Python objects (`text_factory`).
pub(crate) enum Text {
    Str,
    Bytes,
    Call(Py<PyAny>),
}

impl Text {
    pub(crate) fn of(py: Python<'_>, factory: &Bound<'_, PyAny>) -> PyResult<Text> {
        let s = sqlite3(py)?;
        Ok(if factory.is(s.str_type.bind(py)) {
            Text::Str
        } else if factory.is(s.bytes_type.bind(py)) {
            Text::Bytes
        } else {
            Text::Call(factory.clone().unbind())
        })
    }
}

/// One value as Python builds it for a result row.
#[inline]
pub(crate) fn value_to_py<'py>(py: Python<'py>, v: &Value, text: &Text) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        Value::Real(f) => PyFloat::new(py, *f).into_any(),
        Value::Text(s) => match text {
            Text::Str => PyString::new(py, s).into_any(),
            Text::Bytes => PyBytes::new(py, s.as_bytes()).into_any(),
            Text::Call(f) => f.bind(py).call1((PyBytes::new(py, s.as_bytes()),))?,
        },
        Value::Blob(b) => PyBytes::new(py, b).into_any(),
    })
}

/// A value with `TEXT` as `str` (or `bytes`): no Python code runs.
#[inline]
fn plain_value<'py>(py: Python<'py>, v: &Value, bytes: bool) -> Bound<'py, PyAny> {
    match v {
        Value::Null => py.None().into_bound(py),
        Value::Integer(i) => match i.into_pyobject(py) {
            Ok(o) => o.into_any(),
        },
        Value::Real(f) => PyFloat::new(py, *f).into_any(),
        Value::Text(s) if bytes => PyBytes::new(py, s.as_bytes()).into_any(),
        Value::Text(s) => PyString::new(py, s).into_any(),
        Value::Blob(b) => PyBytes::new(py, b).into_any(),
    }
}

/// A value as a UDF argument (text is always `str`).
pub(crate) fn arg_to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    value_to_py(py, v, &Text::Str)
}

/// The bytes a converter receives (`sqlite3_column_blob` of the value).
fn value_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => Vec::new(),
        Value::Integer(i) => i.to_string().into_bytes(),
        Value::Real(f) => format_real(*f).into_bytes(),
        Value::Text(s) => s.as_bytes().to_vec(),
        Value::Blob(b) => b.clone(),
    }
}

/// SQLite's text for a REAL (`%!.15g`, then more digits if that does not round-trip).
fn format_real(f: f64) -> String {
    if f.is_nan() {
        return String::new();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf".into() } else { "-Inf".into() };
    }
    let mut s = format!("{f:?}");
    if let Some(stripped) = s.strip_suffix(".0") {
        s = format!("{stripped}.0");
    }
    s
}

/// Everything needed to turn result rows into Python objects.
pub(crate) struct RowConv {
    pub(crate) text: Text,
    /// `detect_types` converters by column.
    pub(crate) converters: Option<Converters>,
    /// `row_factory(description_cursor, tuple)`.
    pub(crate) factory: Option<(Py<PyAny>, Py<PyAny>)>,
}

impl RowConv {
    pub(crate) fn row<'py>(&self, py: Python<'py>, row: &Row) -> PyResult<Bound<'py, PyAny>> {
        let values = row.values();
        let tuple = match &self.converters {
            None if !matches!(self.text, Text::Call(_)) => {
                let bytes = matches!(self.text, Text::Bytes);
                PyTuple::new(py, values.iter().map(|v| plain_value(py, v, bytes)))?
            }
            None => PyTuple::new(
                py,
                values
                    .iter()
                    .map(|v| value_to_py(py, v, &self.text))
                    .collect::<PyResult<Vec<_>>>()?,
            )?,
            Some(conv) => {
                let mut items = Vec::with_capacity(values.len());
                for (i, v) in values.iter().enumerate() {
                    match conv.get(i).and_then(Option::as_ref) {
                        Some(c) if !v.is_null() => items.push(c.bind(py).call1((PyBytes::new(py, &value_bytes(v)),))?),
                        _ => items.push(value_to_py(py, v, &self.text)?),
                    }
                }
                PyTuple::new(py, items)?
            }
        };
        match &self.factory {
            None => Ok(tuple.into_any()),
            Some((f, cursor)) => f.bind(py).call1((cursor.bind(py), tuple)),
        }
    }

    pub(crate) fn rows<'py, 'r>(
        &self,
        py: Python<'py>,
        rows: impl ExactSizeIterator<Item = &'r Row>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for r in rows {
            list.append(self.row(py, r)?)?;
        }
        Ok(list)
    }
}

/// The `detect_types` converter of each column (`None`: none for that column).
pub(crate) type Converters = Arc<Vec<Option<Py<PyAny>>>>;

/// `detect_types` flags of Python's `sqlite3`.
pub(crate) const PARSE_DECLTYPES: i32 = 1;
pub(crate) const PARSE_COLNAMES: i32 = 2;

/// A column's name as `sqlite3` reports it in `description` (with `PARSE_COLNAMES`, the name
/// stops before ` [type]`).
pub(crate) fn column_name(name: &str, detect_types: i32) -> &str {
    if detect_types & PARSE_COLNAMES != 0
        && let Some(i) = name.find('[')
    {
        return name[..i].trim_end_matches(' ');
    }
    name
}

/// The converters for `columns` under `detect_types` (`None` when there are none).
pub(crate) fn converters(py: Python<'_>, columns: &[Column], detect_types: i32) -> PyResult<Option<Converters>> {
    if detect_types & (PARSE_DECLTYPES | PARSE_COLNAMES) == 0 {
        return Ok(None);
    }
    let table = sqlite3(py)?.converters.bind(py);
    if table.is_empty() {
        return Ok(None);
    }
    let lookup =
        |key: &str| -> PyResult<Option<Py<PyAny>>> { Ok(table.get_item(key.to_uppercase())?.map(Bound::unbind)) };
    let mut out = Vec::with_capacity(columns.len());
    let mut any = false;
    for c in columns {
        let mut conv = None;
        if detect_types & PARSE_COLNAMES != 0
            && let (Some(a), Some(b)) = (c.name().find('['), c.name().rfind(']'))
            && a < b
        {
            conv = lookup(&c.name()[a + 1..b])?;
        }
        if conv.is_none()
            && detect_types & PARSE_DECLTYPES != 0
            && let Some(decl) = c.decl_type()
        {
            let word = decl.split([' ', '(']).next().unwrap_or("");
            conv = lookup(word)?;
        }
        any |= conv.is_some();
        out.push(conv);
    }
    Ok(any.then(|| Arc::new(out)))
}

/// One parameter as SQLite binds it (Python `sqlite3`'s adaptation rules: exact `int`,
/// `float`, `str`, `bytearray` as they are; anything else through `sqlite3.adapters` /
/// `__conform__` first, then by base type).
pub(crate) fn py_to_value(py: Python<'_>, obj: &Bound<'_, PyAny>, index: usize) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return int_value(obj);
    }
    if obj.is_exact_instance_of::<PyString>() {
        return Ok(Value::Text(obj.cast::<PyString>()?.to_str()?.to_owned()));
    }
    if obj.is_exact_instance_of::<PyFloat>() {
        return Ok(Value::Real(obj.cast::<PyFloat>()?.value()));
    }
    if obj.is_exact_instance_of::<PyBytes>() {
        return Ok(Value::Blob(obj.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    let adapted = adapt(py, obj)?;
    let o = adapted.as_ref().unwrap_or(obj);
    if o.is_none() {
        Ok(Value::Null)
    } else if o.is_instance_of::<PyInt>() {
        // bool included, as in sqlite3.
        if o.is_instance_of::<PyBool>() {
            return Ok(Value::Integer(i64::from(o.is_truthy()?)));
        }
        int_value(o)
    } else if o.is_instance_of::<PyFloat>() {
        Ok(Value::Real(o.extract::<f64>()?))
    } else if o.is_instance_of::<PyString>() {
        Ok(Value::Text(o.cast::<PyString>()?.to_str()?.to_owned()))
    } else if let Ok(b) = o.cast::<PyBytes>() {
        Ok(Value::Blob(b.as_bytes().to_vec()))
    } else if let Ok(b) = o.cast::<PyByteArray>() {
        Ok(Value::Blob(b.to_vec()))
    } else if let Ok(mv) = py.import("builtins")?.getattr("memoryview")?.call1((o,)) {
        Ok(Value::Blob(
            mv.call_method0("tobytes")?.cast::<PyBytes>()?.as_bytes().to_vec(),
        ))
    } else {
        Err(programming_error(
            py,
            format!(
                "Error binding parameter {index}: type '{}' is not supported",
                obj.get_type().name()?
            ),
        ))
    }
}

fn int_value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    match obj.extract::<i64>() {
        Ok(i) => Ok(Value::Integer(i)),
        Err(_) => Err(PyOverflowError::new_err(
            "Python int too large to convert to SQLite INTEGER",
        )),
    }
}

/// `sqlite3.adapters[(type(obj), PrepareProtocol)](obj)`, or `obj.__conform__(PrepareProtocol)`.
fn adapt<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let s = sqlite3(py)?;
    let adapters = s.adapters.bind(py);
    if !adapters.is_empty() {
        let key = (obj.get_type(), s.prepare_protocol.bind(py));
        if let Some(f) = adapters.get_item(key)? {
            return f.call1((obj,)).map(Some);
        }
    }
    if let Ok(conform) = obj.getattr("__conform__") {
        let r = conform.call1((s.prepare_protocol.bind(py),))?;
        if !r.is_none() {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// Statement parameters the way `sqlite3` takes them: `None`, a sequence (by position), or a
/// `dict` (by name: values are looked up for the names the statement uses; other keys are
/// ignored).
pub(crate) fn params(py: Python<'_>, sql: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<ParamValues> {
    let Some(p) = params.filter(|p| !p.is_none()) else {
        return Ok(ParamValues::None);
    };
    if let Ok(t) = p.cast::<PyTuple>() {
        let mut v = Vec::with_capacity(t.len());
        for (i, x) in t.iter().enumerate() {
            v.push(py_to_value(py, &x, i + 1)?);
        }
        return Ok(positional(v));
    }
    if let Ok(l) = p.cast::<PyList>() {
        let mut v = Vec::with_capacity(l.len());
        for (i, x) in l.iter().enumerate() {
            v.push(py_to_value(py, &x, i + 1)?);
        }
        return Ok(positional(v));
    }
    if let Ok(d) = p.cast::<PyDict>() {
        let names = sqltext::parameters(sql);
        let mut pairs: Vec<(Cow<'static, str>, Value)> = Vec::with_capacity(names.len());
        for (i, name) in names.into_iter().enumerate() {
            let Some(name) = name else {
                return Err(programming_error(
                    py,
                    format!(
                        "Binding {} has no name, but you supplied a dictionary (which has only names).",
                        i + 1
                    ),
                ));
            };
            let key = &name[1..];
            let value = if d.is_exact_instance_of::<PyDict>() {
                d.get_item(key)?
            } else {
                match d.as_any().get_item(key) {
                    Ok(v) => Some(v),
                    Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyError>(py) => None,
                    Err(e) => return Err(e),
                }
            };
            let Some(value) = value else {
                return Err(programming_error(
                    py,
                    format!("You did not supply a value for binding parameter {name}."),
                ));
            };
            pairs.push((Cow::Owned(name), py_to_value(py, &value, i + 1)?));
        }
        return Ok(if pairs.is_empty() {
            ParamValues::None
        } else {
            ParamValues::Named(pairs)
        });
    }
    if p.is_instance_of::<PyString>() || p.hasattr("__len__")? && p.hasattr("__getitem__")? {
        // Any other sequence (sqlite3 accepts them, str included).
        let n = p.len()?;
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            v.push(py_to_value(py, &p.get_item(i)?, i + 1)?);
        }
        return Ok(positional(v));
    }
    Err(programming_error(py, "parameters are of unsupported type"))
}

fn positional(v: Vec<Value>) -> ParamValues {
    if v.is_empty() {
        ParamValues::None
    } else {
        aiolite::Params::into_values(v)
    }
}

/// Refuse what `sqlite3` refuses before preparing: NUL characters.
pub(crate) fn check_sql(py: Python<'_>, sql: &str) -> PyResult<()> {
    if sql.contains('\0') {
        return Err(programming_error(py, "the query contains a null character"));
    }
    Ok(())
}

/// A UDF's return value as a SQLite value.
pub(crate) fn result_value(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Integer(i64::from(obj.is_truthy()?)));
    }
    if obj.is_instance_of::<PyInt>() {
        return int_value(obj);
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(Value::Real(obj.extract::<f64>()?));
    }
    if obj.is_instance_of::<PyString>() {
        return Ok(Value::Text(obj.cast::<PyString>()?.to_str()?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Blob(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::Blob(b.to_vec()));
    }
    let _ = py;
    Err(PyValueError::new_err("unsupported result type"))
}

/// An error for a state that should not happen.
pub(crate) fn internal(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!("aiolite: unexpected reply to {what}"))
}
