//! A restricted unpickler for the `data.pkl` of a `torch.save` archive.
//!
//! It understands the binary opcodes of pickle protocols 2 to 5 that `torch.save` and
//! Python's pickler emit for dicts, lists, tuples, numbers, strings and tensors, and builds
//! an inert tree of [`Value`]s in an arena ([`Object`]s). Nothing is ever called: a global
//! (`GLOBAL`, `STACK_GLOBAL`) is only a name, looked up in a short list of what a state dict
//! needs ([`resolve`]); any other name stops the load with [`PickleError::Forbidden`]. The
//! few allowed "calls" (`REDUCE`) are interpreted here: an `OrderedDict()` becomes a dict,
//! `_rebuild_tensor_v2(storage, offset, size, stride, …)` a tensor description.
//!
//! Every value pushed costs at least one byte of input, the memo is a map (a `LONG_BINPUT`
//! index cannot make it allocate), strings are shared on `BINGET`, and lengths are checked
//! against the bytes left before anything is allocated: memory stays proportional to the
//! pickle's size, and no input can panic.
use super::Dtype;
use std::collections::HashMap;
use std::rc::Rc;

/// The most dimensions a tensor may have (PyTorch's own limit is 64 too).
pub(crate) const MAX_DIMS: usize = 64;

/// Why a pickle could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PickleError {
    /// Malformed or unsupported input; the message names the byte offset.
    Malformed(String),
    /// The input ends before the pickle does (more of the file may complete it).
    Truncated(String),
    /// A global that a state dict never needs (`module.name`).
    Forbidden(String),
}

type Result<T> = std::result::Result<T, PickleError>;

fn bad<T>(at: usize, what: impl std::fmt::Display) -> Result<T> {
    Err(PickleError::Malformed(format!("pickle byte {at}: {what}")))
}

/// A pickled value. Containers live in the arena ([`Unpickled::objects`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit 64 bits (its value is not needed).
    BigInt,
    Float(f64),
    Str(Rc<str>),
    /// Bytes (their content is not needed): the length.
    Bytes(usize),
    /// An object in the arena.
    Obj(usize),
}

/// A key of a dict that can be looked up (other keys are kept, never merged).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum DictKey {
    Str(Rc<str>),
    Int(i64),
}

/// A dict in insertion order (as Python's).
#[derive(Debug, Default)]
pub(crate) struct Dict {
    pub(crate) items: Vec<(Value, Value)>,
    index: HashMap<DictKey, usize>,
}

impl Dict {
    fn insert(&mut self, k: Value, v: Value) {
        let key = match &k {
            Value::Str(s) => Some(DictKey::Str(s.clone())),
            Value::Int(i) => Some(DictKey::Int(*i)),
            Value::Bool(b) => Some(DictKey::Int(i64::from(*b))),
            _ => None,
        };
        if let Some(key) = key {
            if let Some(&i) = self.index.get(&key) {
                if let Some(slot) = self.items.get_mut(i) {
                    slot.1 = v;
                    return;
                }
            }
            self.index.insert(key, self.items.len());
        }
        self.items.push((k, v));
    }

    /// The value under a string key.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        let i = *self.index.get(&DictKey::Str(Rc::from(key)))?;
        self.items.get(i).map(|(_, v)| v)
    }
}

/// How a storage's bytes are typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StorageKind {
    /// `torch.FloatStorage` and friends: the storage's size counts elements of this type.
    Typed(Dtype),
    /// `torch.UntypedStorage` (with `_rebuild_tensor_v3`): the size counts bytes.
    Untyped,
    /// A storage type psyrun cannot use (complex, quantized), by name.
    Unsupported(String),
}

impl StorageKind {
    /// Bytes per element (1 for untyped storages, whose sizes count bytes).
    pub(crate) fn element_size(&self) -> u64 {
        match self {
            StorageKind::Typed(d) => d.size() as u64,
            StorageKind::Untyped => 1,
            StorageKind::Unsupported(name) => match name.as_str() {
                "torch.ComplexDoubleStorage" => 16,
                "torch.ComplexFloatStorage" => 8,
                "torch.QInt32Storage" => 4,
                _ => 1,
            },
        }
    }
}

/// A storage named by a persistent id: `('storage', type, key, location, size)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Storage {
    pub(crate) kind: StorageKind,
    /// The record's name in the archive (`<prefix>/data/<key>`).
    pub(crate) key: String,
    /// Elements (typed) or bytes (untyped).
    pub(crate) size: u64,
}

/// What `_rebuild_tensor_v2`/`_v3` would build: a strided view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TensorRef {
    pub(crate) storage: Storage,
    /// The element type, or the name of one psyrun cannot read.
    pub(crate) dtype: std::result::Result<Dtype, String>,
    /// Offset into the storage, in elements.
    pub(crate) offset: u64,
    pub(crate) shape: Vec<u64>,
    pub(crate) strides: Vec<u64>,
}

/// The allowed globals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    OrderedDict,
    /// PyTorch < 0.4: `(storage, offset, size, stride)`.
    RebuildTensor,
    RebuildTensorV2,
    RebuildTensorV3,
    RebuildParameter,
    RebuildParameterWithState,
    StorageType(StorageKind),
    /// A `torch.<dtype>` (for `_rebuild_tensor_v3`).
    Dtype(std::result::Result<Dtype, String>),
    GetLayout,
    /// `torch.strided` and other inert markers.
    Marker,
    /// TorchScript archives only: `torch.jit._pickle`'s list builders and type tags, which
    /// return their first argument.
    PassThrough,
    /// TorchScript archives only: a class `__torch__.…` of the archive, by qualified name.
    /// "Calling" it makes an inert [`Object::Module`] whose attributes a BUILD sets.
    ScriptClass(Rc<str>),
}

/// An object in the arena.
#[derive(Debug)]
pub(crate) enum Object {
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Dict),
    Global(Global),
    Storage(Storage),
    Tensor(TensorRef),
    /// The result of an allowed call whose value psyrun does not need.
    Opaque,
    /// An object of a TorchScript class (a module of the archive): its class and the state
    /// a BUILD gave it (a dict of attributes), never anything run.
    Module {
        class: Rc<str>,
        state: Option<Value>,
    },
}

impl Object {
    /// What the object is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Object::Tuple(_) => "a tuple",
            Object::List(_) => "a list",
            Object::Dict(_) => "a dict",
            Object::Global(_) => "a class or function",
            Object::Storage(_) => "a storage",
            Object::Tensor(_) => "a tensor",
            Object::Opaque => "an object",
            Object::Module { .. } => "a TorchScript object",
        }
    }
}

/// The result: the arena and the top-level value.
#[derive(Debug)]
pub(crate) struct Unpickled {
    pub(crate) objects: Vec<Object>,
    pub(crate) root: Value,
    /// The bytes read, up to and including STOP (the legacy format has pickles in a row).
    pub(crate) end: usize,
}

impl Unpickled {
    /// The object a value refers to.
    pub(crate) fn object(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(i) => self.objects.get(*i),
            _ => None,
        }
    }
}

/// Looks a global up in the list of what a state dict needs; with `script` (the `data.pkl`
/// of a TorchScript archive), the archive's own classes and `torch.jit._pickle`'s helpers
/// too.
pub(crate) fn resolve(module: &str, name: &str, script: bool) -> Result<Global> {
    let forbidden = || Err(PickleError::Forbidden(format!("{module}.{name}")));
    if script && (module == "__torch__" || module.starts_with("__torch__.")) && !name.is_empty() {
        return Ok(Global::ScriptClass(Rc::from(format!("{module}.{name}"))));
    }
    Ok(match (module, name) {
        (
            "torch.jit._pickle",
            "build_intlist" | "build_tensorlist" | "build_doublelist" | "build_boollist"
            | "restore_type_tag",
        ) if script => Global::PassThrough,
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensorV3,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch.serialization", "_get_layout") => Global::GetLayout,
        ("torch", "strided") => Global::Marker,
        ("torch", "UntypedStorage") => Global::StorageType(StorageKind::Untyped),
        ("torch", n) => {
            if let Some(d) = storage_dtype(n) {
                Global::StorageType(StorageKind::Typed(d))
            } else if UNSUPPORTED_STORAGES.contains(&n) {
                Global::StorageType(StorageKind::Unsupported(format!("torch.{n}")))
            } else if let Some(d) = dtype_named(n) {
                Global::Dtype(Ok(d))
            } else if UNSUPPORTED_DTYPES.contains(&n) {
                Global::Dtype(Err(format!("torch.{n}")))
            } else {
                return forbidden();
            }
        }
        _ => return forbidden(),
    })
}

fn storage_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "FloatStorage" => Dtype::F32,
        "DoubleStorage" => Dtype::F64,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" => Dtype::U8,
        "BoolStorage" => Dtype::Bool,
        _ => return None,
    })
}

const UNSUPPORTED_STORAGES: [&str; 7] = [
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
];

fn dtype_named(name: &str) -> Option<Dtype> {
    Some(match name {
        "float32" | "float" => Dtype::F32,
        "float64" | "double" => Dtype::F64,
        "float16" | "half" => Dtype::F16,
        "bfloat16" => Dtype::BF16,
        "int64" | "long" => Dtype::I64,
        "int32" | "int" => Dtype::I32,
        "int16" | "short" => Dtype::I16,
        "int8" => Dtype::I8,
        "uint8" => Dtype::U8,
        "bool" => Dtype::Bool,
        _ => return None,
    })
}

const UNSUPPORTED_DTYPES: [&str; 13] = [
    "uint16",
    "uint32",
    "uint64",
    "complex32",
    "complex64",
    "complex128",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e8m0fnu",
    "float4_e2m1fn_x2",
    "bits8",
];

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let left = self.data.len() - self.pos.min(self.data.len());
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let s = &self.data[self.pos..self.pos + n];
                self.pos += n;
                Ok(s)
            }
            _ => Err(PickleError::Truncated(format!(
                "pickle byte {}: {n} bytes announced, {left} left (truncated?)",
                self.pos
            ))),
        }
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let Some(n) = rest.iter().take(1024).position(|&b| b == b'\n') else {
            return bad(self.pos, "GLOBAL without a newline in its first 1024 bytes");
        };
        let at = self.pos;
        let s = self.take(n as u64)?;
        self.pos += 1;
        std::str::from_utf8(s).or_else(|_| bad(at, "GLOBAL name is not UTF-8"))
    }
    fn str(&mut self, n: u64) -> Result<Value> {
        let at = self.pos;
        let s = self.take(n)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(Value::Str(Rc::from(s))),
            Err(_) => bad(at, "string is not UTF-8"),
        }
    }
}

struct Machine<'a> {
    r: Reader<'a>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    objects: Vec<Object>,
    /// Where the current opcode starts (for messages).
    at: usize,
    /// Dict items `OrderedDict(items)` may still copy: at most one per input byte, so that
    /// a memoized list of items used again and again cannot build huge dicts.
    copy_budget: usize,
    /// Reading a TorchScript archive's `data.pkl` (see [`resolve`]).
    script: bool,
}

/// Unpickles `data`, interpreting only the allowed globals.
pub(crate) fn unpickle(data: &[u8]) -> Result<Unpickled> {
    unpickle_as(data, false)
}

/// Unpickles the `data.pkl` of a TorchScript archive: as [`unpickle`], but the archive's
/// classes (`__torch__.…`) become inert [`Object::Module`]s holding their attributes.
pub(crate) fn unpickle_script(data: &[u8]) -> Result<Unpickled> {
    unpickle_as(data, true)
}

fn unpickle_as(data: &[u8], script: bool) -> Result<Unpickled> {
    let mut m = Machine {
        script,
        r: Reader { data, pos: 0 },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        objects: Vec::new(),
        at: 0,
        copy_budget: data.len(),
    };
    loop {
        m.at = m.r.pos;
        if m.r.pos >= data.len() {
            return Err(PickleError::Truncated(format!(
                "pickle byte {}: ends without STOP (truncated?)",
                m.at
            )));
        }
        let op = m.r.u8()?;
        if op == b'.' {
            let root = m.pop()?;
            return Ok(Unpickled {
                objects: m.objects,
                root,
                end: m.r.pos,
            });
        }
        m.step(op)?;
    }
}

impl Machine<'_> {
    fn err<T>(&self, what: impl std::fmt::Display) -> Result<T> {
        bad(self.at, what)
    }

    fn new_obj(&mut self, o: Object) -> Value {
        self.objects.push(o);
        Value::Obj(self.objects.len() - 1)
    }

    fn push_obj(&mut self, o: Object) {
        let v = self.new_obj(o);
        self.stack.push(v);
    }

    /// Pops a value; never across a MARK.
    fn pop(&mut self) -> Result<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("stack underflow");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("stack underflow"),
        }
    }

    fn top(&self) -> Result<&Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        match self.stack.last() {
            Some(v) if self.stack.len() > floor => Ok(v),
            _ => self.err("stack underflow"),
        }
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        match self.marks.pop() {
            Some(m) if m <= self.stack.len() => Ok(self.stack.split_off(m)),
            _ => self.err("no MARK to pop to"),
        }
    }

    fn memo_get(&mut self, i: u32) -> Result<()> {
        match self.memo.get(&i) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => self.err(format!("memo entry {i} is not set")),
        }
    }

    fn memo_put(&mut self, i: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(i, v);
        Ok(())
    }

    /// The object (in the arena) the value on top of the stack refers to.
    fn top_obj(&mut self) -> Result<&mut Object> {
        let at = self.at;
        let Value::Obj(i) = *self.top()? else {
            return bad(at, "expected a container on the stack");
        };
        match self.objects.get_mut(i) {
            Some(o) => Ok(o),
            None => bad(at, "dangling object"),
        }
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        let at = self.at;
        if !items.len().is_multiple_of(2) {
            return bad(at, "SETITEMS with an odd number of values");
        }
        let Object::Dict(d) = self.top_obj()? else {
            return bad(at, "SETITEM on something that is not a dict");
        };
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            d.insert(k, v);
        }
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        let at = self.at;
        match self.top_obj()? {
            Object::List(l) => {
                l.extend(items);
                Ok(())
            }
            _ => bad(at, "APPEND to something that is not a list or set"),
        }
    }

    fn int(&mut self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() > 8 {
            return Value::BigInt;
        }
        let negative = bytes[bytes.len() - 1] & 0x80 != 0;
        let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
        buf[..bytes.len()].copy_from_slice(bytes);
        Value::Int(i64::from_le_bytes(buf))
    }

    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => {
                // PROTO
                let p = self.r.u8()?;
                if p > 5 {
                    return self.err(format!("pickle protocol {p} is not supported"));
                }
            }
            0x95 => {
                // FRAME: only a length hint
                self.r.u64()?;
            }
            b'(' => self.marks.push(self.stack.len()),
            b'}' => self.push_obj(Object::Dict(Dict::default())),
            b']' | 0x8f => self.push_obj(Object::List(Vec::new())), // EMPTY_LIST, EMPTY_SET
            b')' => self.push_obj(Object::Tuple(Vec::new())),
            b't' => {
                let items = self.pop_mark()?;
                self.push_obj(Object::Tuple(items));
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push_obj(Object::Tuple(items));
            }
            0x91 => {
                // FROZENSET
                let items = self.pop_mark()?;
                self.push_obj(Object::List(items));
            }
            b'q' => {
                let i = self.r.u8()?;
                self.memo_put(u32::from(i))?;
            }
            b'r' => {
                let i = self.r.u32()?;
                self.memo_put(i)?;
            }
            0x94 => {
                // MEMOIZE
                let i = u32::try_from(self.memo.len()).or_else(|_| self.err("memo too large"))?;
                self.memo_put(i)?;
            }
            b'h' => {
                let i = self.r.u8()?;
                self.memo_get(u32::from(i))?;
            }
            b'j' => {
                let i = self.r.u32()?;
                self.memo_get(i)?;
            }
            b'J' => {
                let v = self.r.i32()?;
                self.stack.push(Value::Int(i64::from(v)));
            }
            b'K' => {
                let v = self.r.u8()?;
                self.stack.push(Value::Int(i64::from(v)));
            }
            b'M' => {
                let v = self.r.u16()?;
                self.stack.push(Value::Int(i64::from(v)));
            }
            0x8a => {
                // LONG1
                let n = self.r.u8()?;
                let b = self.r.take(u64::from(n))?;
                let v = self.int(b);
                self.stack.push(v);
            }
            0x8b => {
                // LONG4
                let n = self.r.i32()?;
                let n = u64::try_from(n).or_else(|_| self.err("negative length"))?;
                let b = self.r.take(n)?;
                let v = self.int(b);
                self.stack.push(v);
            }
            b'G' => {
                let v = f64::from_be_bytes(self.r.array()?);
                self.stack.push(Value::Float(v));
            }
            b'X' => {
                let n = self.r.u32()?;
                let v = self.r.str(u64::from(n))?;
                self.stack.push(v);
            }
            0x8c => {
                let n = self.r.u8()?;
                let v = self.r.str(u64::from(n))?;
                self.stack.push(v);
            }
            0x8d => {
                let n = self.r.u64()?;
                let v = self.r.str(n)?;
                self.stack.push(v);
            }
            b'T' | b'U' => {
                // BINSTRING, SHORT_BINSTRING (Python 2 str): kept as text
                let n = if op == b'T' {
                    u64::try_from(self.r.i32()?).or_else(|_| self.err("negative length"))?
                } else {
                    u64::from(self.r.u8()?)
                };
                let s = self.r.take(n)?;
                self.stack
                    .push(Value::Str(Rc::from(String::from_utf8_lossy(s).as_ref())));
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                let n = match op {
                    b'B' => u64::from(self.r.u32()?),
                    b'C' => u64::from(self.r.u8()?),
                    _ => self.r.u64()?,
                };
                let s = self.r.take(n)?;
                self.stack.push(Value::Bytes(s.len()));
            }
            0x88 => self.stack.push(Value::Bool(true)),
            0x89 => self.stack.push(Value::Bool(false)),
            b'N' => self.stack.push(Value::None),
            b'c' => {
                let module = self.r.line()?;
                let name = self.r.line()?;
                let g = resolve(module, name, self.script)?;
                self.push_obj(Object::Global(g));
            }
            0x93 => {
                // STACK_GLOBAL
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return self.err("STACK_GLOBAL needs two strings");
                };
                let g = resolve(&module, &name, self.script)?;
                self.push_obj(Object::Global(g));
            }
            b'R' | 0x81 => {
                // REDUCE, NEWOBJ
                let args = self.pop()?;
                let f = self.pop()?;
                let v = self.call(&f, &args)?;
                self.stack.push(v);
            }
            0x92 => {
                // NEWOBJ_EX
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let f = self.pop()?;
                let empty =
                    matches!(self.obj(&kwargs), Some(Object::Dict(d)) if d.items.is_empty());
                if !empty {
                    return self.err("NEWOBJ_EX with keyword arguments");
                }
                let v = self.call(&f, &args)?;
                self.stack.push(v);
            }
            b'b' => {
                // BUILD: the state of a TorchScript object is kept (its attributes); any
                // other state is not needed (e.g. the `_metadata` of a state_dict).
                let state = self.pop()?;
                let at = self.at;
                if let Value::Obj(i) = *self.top()? {
                    if let Some(Object::Module { state: slot, .. }) = self.objects.get_mut(i) {
                        if slot.is_some() {
                            return bad(at, "BUILD of a TorchScript object built before");
                        }
                        *slot = Some(state);
                    }
                }
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.set_items(vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'a' => {
                let v = self.pop()?;
                self.append(vec![v])?;
            }
            b'e' | 0x90 => {
                // APPENDS, ADDITEMS
                let items = self.pop_mark()?;
                self.append(items)?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let s = self.storage(&pid)?;
                self.push_obj(Object::Storage(s));
            }
            b'0' => {
                // POP: a MARK on top is popped as in Python
                if self.marks.last() == Some(&self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.stack.push(v);
            }
            b'P' => return self.err("text PERSID is not used by torch.save"),
            0x82..=0x84 => {
                return self.err("extension-registry globals (EXT1/2/4) are not allowed")
            }
            b'i' | b'o' => {
                return self.err("INST/OBJ (protocol 0/1 object creation) is not allowed")
            }
            _ => {
                return self.err(format!(
                    "opcode 0x{op:02x} is not supported (torch.save writes pickle protocol 2)"
                ))
            }
        }
        Ok(())
    }

    fn obj(&self, v: &Value) -> Option<&Object> {
        match v {
            Value::Obj(i) => self.objects.get(*i),
            _ => None,
        }
    }

    /// A copy of a tuple of at most `max` values (checked before copying, so that a huge
    /// tuple used again and again costs no time).
    fn tuple(&self, v: &Value, what: &str, max: usize) -> Result<Vec<Value>> {
        match self.obj(v) {
            Some(Object::Tuple(t)) if t.len() <= max => Ok(t.clone()),
            Some(Object::Tuple(t)) => self.err(format!("{what} has {} values", t.len())),
            _ => self.err(format!("{what} must be a tuple")),
        }
    }

    fn uint(&self, v: &Value, what: &str) -> Result<u64> {
        match v {
            Value::Int(i) => u64::try_from(*i).or_else(|_| self.err(format!("{what} is negative"))),
            _ => self.err(format!("{what} must be an integer")),
        }
    }

    fn uints(&self, v: &Value, what: &str) -> Result<Vec<u64>> {
        self.tuple(v, what, MAX_DIMS)?
            .iter()
            .map(|x| self.uint(x, what))
            .collect()
    }

    /// `('storage', type, key, location, size)`, and in the legacy format a sixth field,
    /// `None` unless the storage is a view of another (PyTorch < 0.4, not supported).
    fn storage(&self, pid: &Value) -> Result<Storage> {
        let t = self.tuple(pid, "a persistent id", 6)?;
        let (tag, ty, key, size) = match t.as_slice() {
            [tag, ty, key, _location, size] | [tag, ty, key, _location, size, Value::None] => {
                (tag, ty, key, size)
            }
            [_, _, _, _, _, _] => {
                return self.err("storage views (PyTorch < 0.4) are not supported")
            }
            _ => return self.err("a persistent id must have 5 fields"),
        };
        if !matches!(tag, Value::Str(s) if &**s == "storage") {
            return self.err("persistent id is not a storage");
        }
        let Some(Object::Global(Global::StorageType(kind))) = self.obj(ty) else {
            return self.err("persistent id without a storage type");
        };
        let Value::Str(key) = key else {
            return self.err("storage key must be a string");
        };
        if key.is_empty()
            || key.len() > 64
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return self.err(format!("bad storage key {key:?}"));
        }
        Ok(Storage {
            kind: kind.clone(),
            key: key.to_string(),
            size: self.uint(size, "storage size")?,
        })
    }

    /// A tensor from `(offset, size, stride)`.
    fn tensor_ref(
        &self,
        storage: Storage,
        dtype: std::result::Result<Dtype, String>,
        args: &[Value],
    ) -> Result<TensorRef> {
        let [offset, shape, strides] = args else {
            return self.err("tensor rebuild without offset, size and stride");
        };
        let offset = self.uint(offset, "storage offset")?;
        let shape = self.uints(shape, "tensor size")?;
        let strides = self.uints(strides, "tensor stride")?;
        if shape.len() != strides.len() {
            return self.err("tensor size and stride differ in length");
        }
        Ok(TensorRef {
            storage,
            dtype,
            offset,
            shape,
            strides,
        })
    }

    fn call(&mut self, f: &Value, args: &Value) -> Result<Value> {
        let Some(Object::Global(g)) = self.obj(f) else {
            return self.err("REDUCE of something that is not an allowed function");
        };
        let g = g.clone();
        let args = self.tuple(args, "call arguments", 8)?;
        match g {
            Global::OrderedDict => {
                // Python 3 pickles `OrderedDict()` then SETITEMS; Python 2 (old checkpoints)
                // `OrderedDict([[key, value], …])`.
                let mut d = Dict::default();
                match args.as_slice() {
                    [] => {}
                    [items] => {
                        let n = match self.obj(items) {
                            Some(Object::List(l) | Object::Tuple(l)) => l.len(),
                            _ => return self.err("OrderedDict(…) of something not a list"),
                        };
                        if n > self.copy_budget {
                            return self.err("OrderedDict(…) items used too often");
                        }
                        self.copy_budget -= n;
                        let Some(Object::List(items) | Object::Tuple(items)) = self.obj(items)
                        else {
                            return self.err("OrderedDict(…) of something not a list");
                        };
                        for pair in items {
                            match self.obj(pair) {
                                Some(Object::List(p) | Object::Tuple(p)) if p.len() == 2 => {
                                    d.insert(p[0].clone(), p[1].clone());
                                }
                                _ => return self.err("an OrderedDict item must be a pair"),
                            }
                        }
                    }
                    _ => return self.err("OrderedDict takes at most one argument"),
                }
                Ok(self.new_obj(Object::Dict(d)))
            }
            Global::RebuildTensor => {
                if args.len() != 4 {
                    return self.err(format!("tensor rebuild with {} arguments", args.len()));
                }
                let Some(Object::Storage(storage)) = self.obj(&args[0]) else {
                    return self.err("tensor rebuild without a storage");
                };
                let storage = storage.clone();
                let dtype = match &storage.kind {
                    StorageKind::Typed(d) => Ok(*d),
                    StorageKind::Unsupported(n) => Err(n.clone()),
                    StorageKind::Untyped => {
                        return self.err("_rebuild_tensor of an untyped storage")
                    }
                };
                let t = self.tensor_ref(storage, dtype, &args[1..4])?;
                Ok(self.new_obj(Object::Tensor(t)))
            }
            Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                let v3 = g == Global::RebuildTensorV3;
                let n = args.len();
                if (!v3 && !(6..=7).contains(&n)) || (v3 && !(7..=8).contains(&n)) {
                    return self.err(format!("tensor rebuild with {n} arguments"));
                }
                let Some(Object::Storage(storage)) = self.obj(&args[0]) else {
                    return self.err("tensor rebuild without a storage");
                };
                let storage = storage.clone();
                let dtype = if v3 {
                    match self.obj(&args[6]) {
                        Some(Object::Global(Global::Dtype(d))) => d.clone(),
                        _ => return self.err("_rebuild_tensor_v3 without a dtype"),
                    }
                } else {
                    match &storage.kind {
                        StorageKind::Typed(d) => Ok(*d),
                        StorageKind::Unsupported(n) => Err(n.clone()),
                        StorageKind::Untyped => {
                            return self.err("_rebuild_tensor_v2 of an untyped storage")
                        }
                    }
                };
                let t = self.tensor_ref(storage, dtype, &args[1..4])?;
                Ok(self.new_obj(Object::Tensor(t)))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let want = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != want {
                    return self.err("parameter rebuild with a wrong number of arguments");
                }
                match self.obj(&args[0]) {
                    Some(Object::Tensor(_)) => Ok(args[0].clone()),
                    _ => self.err("parameter rebuild of something that is not a tensor"),
                }
            }
            Global::GetLayout => Ok(self.new_obj(Object::Opaque)),
            Global::PassThrough => match args.first() {
                Some(v) if args.len() <= 2 => Ok(v.clone()),
                _ => self.err("torch.jit._pickle helper with a wrong number of arguments"),
            },
            Global::ScriptClass(class) => {
                if !args.is_empty() {
                    return self.err(format!("TorchScript class `{class}` called with arguments"));
                }
                Ok(self.new_obj(Object::Module { class, state: None }))
            }
            Global::StorageType(_) | Global::Dtype(_) | Global::Marker => {
                self.err("a storage type, dtype or layout cannot be called")
            }
        }
    }
}
