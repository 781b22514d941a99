//! The weights of a TorchScript archive (`torch.jit.save`), read without running it.
//!
//! A TorchScript archive is a zip like a `torch.save` one (`<prefix>/data.pkl`, the storages
//! under `<prefix>/data/<key>`), plus the module's code (`<prefix>/code/…`) and its
//! constants (`constants.pkl`). Its `data.pkl` pickles the module tree: every module an
//! object of a class of the archive (`__torch__.…`, e.g.
//! `__torch__.torch.nn.modules.conv.Conv2d`, or the archive's own
//! `__torch__.multimodal.model.multimodal_transformer.VisualTransformer`) whose state is a
//! dict of its attributes: parameters, buffers, submodules, and plain values (`training`,
//! numbers, strings, lists).
//!
//! The restricted unpickler reads it in its TorchScript mode ([`pickle::unpickle_script`]):
//! a `__torch__` class is only a name, and "calling" it gives an inert object that records
//! the attributes; nothing of the archive's code is ever run. The state dict is then the
//! walk of that tree that `module.state_dict()` does: each module's parameters, then its
//! buffers, then its submodules, keys joined with dots (`visual.conv1.weight`,
//! `visual.transformer.resblocks.0.attn.in_proj_weight`). Which tensor attributes are
//! parameters or buffers (rather than plain tensor attributes, such as a cached attention
//! mask, which `state_dict()` leaves out) is declared in the class's code as
//! `__parameters__ = ["weight", "bias", ]` and `__buffers__ = [...]`: those two lines are
//! read as text, never run. A class whose code declares no `__buffers__` (archives older
//! than those lines) keeps every tensor attribute.
//!
//! [`pickle::unpickle_script`]: super::pickle::unpickle_script
use super::pickle::{Object, TensorRef, Unpickled, Value};
use std::collections::HashMap;

/// The deepest module nesting followed (a CLIP ViT's is 6).
pub(crate) const MAX_DEPTH: usize = 64;

/// The parameters and buffers a TorchScript class declares, in declaration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Declared {
    /// `__parameters__`.
    pub(crate) parameters: Vec<String>,
    /// `__buffers__`, or `None` when the class declares none (older archives): then every
    /// tensor attribute that is no parameter is kept, in attribute order.
    pub(crate) buffers: Option<Vec<String>>,
}

/// The code file of a class `__torch__.a.b.C` (`code/__torch__/a/b.py`, relative to the
/// archive's folder) and the class's name in it (`C`); `None` for a name that is not a
/// TorchScript class path.
pub(crate) fn code_file(class: &str) -> Option<(String, &str)> {
    let (module, name) = class.rsplit_once('.')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !module.split('.').all(ok) || !ok(name) || !module.starts_with("__torch__") {
        return None;
    }
    Some((format!("code/{}.py", module.replace('.', "/")), name))
}

/// The declarations of class `name` in the code of its file: the indented
/// `__parameters__ = [...]` and `__buffers__ = [...]` lines after `class name(`. `None` if
/// the file defines no such class.
pub(crate) fn declarations(code: &str, name: &str) -> Option<Declared> {
    let header = format!("class {name}(");
    let mut lines = code.lines();
    lines.by_ref().find(|l| l.starts_with(&header))?;
    let mut declared = Declared::default();
    for line in lines {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            break;
        }
        let line = line.trim();
        if let Some(list) = line.strip_prefix("__parameters__ = ") {
            declared.parameters = names(list);
        } else if let Some(list) = line.strip_prefix("__buffers__ = ") {
            declared.buffers = Some(names(list));
        }
    }
    Some(declared)
}

/// The quoted names of a list such as `["weight", "bias", ]`.
fn names(list: &str) -> Vec<String> {
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Why the module tree cannot give a state dict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TreeError {
    /// Not the module tree TorchScript writes.
    Malformed(String),
    /// A module whose state psyrun cannot read (a custom `__setstate__`).
    Unsupported(String),
}

/// The state dict of the module tree in `u`: `(key, tensor)` in `state_dict()` order.
/// `declared(class)` gives a class's declarations (read from its code); `None` when its
/// code has no such class, and then every tensor attribute is kept.
pub(crate) fn state_tensors<'u>(
    u: &'u Unpickled,
    declared: &mut dyn FnMut(&str) -> Result<Option<Declared>, TreeError>,
) -> Result<Vec<(String, &'u TensorRef)>, TreeError> {
    let mut walk = Walker {
        u,
        declared,
        cache: HashMap::new(),
        // Every module visit costs one: a module shared by several parents is listed under
        // each (as `state_dict()` does), but sharing cannot make the walk explode.
        budget: u.objects.len() + 1,
        out: Vec::new(),
    };
    match u.object(&u.root) {
        Some(Object::Module { .. }) => walk.module(&u.root, "", 0)?,
        Some(o) => {
            return Err(TreeError::Malformed(format!(
                "data.pkl holds {}, not a TorchScript module",
                o.kind()
            )))
        }
        None => {
            return Err(TreeError::Malformed(
                "data.pkl holds a plain value, not a TorchScript module".into(),
            ))
        }
    }
    Ok(walk.out)
}

struct Walker<'u, 'd> {
    u: &'u Unpickled,
    declared: &'d mut dyn FnMut(&str) -> Result<Option<Declared>, TreeError>,
    cache: HashMap<String, Option<Declared>>,
    budget: usize,
    out: Vec<(String, &'u TensorRef)>,
}

impl<'u> Walker<'u, '_> {
    fn module(&mut self, v: &Value, prefix: &str, depth: usize) -> Result<(), TreeError> {
        let malformed = |what: String| Err(TreeError::Malformed(what));
        let at = if prefix.is_empty() {
            "the top module"
        } else {
            prefix
        };
        if depth > MAX_DEPTH {
            return malformed(format!(
                "modules nested more than {MAX_DEPTH} deep at `{at}`"
            ));
        }
        if self.budget == 0 {
            return malformed("the same modules are reached too many times".into());
        }
        self.budget -= 1;
        let u = self.u;
        let Some(Object::Module { class, state }) = u.object(v) else {
            return malformed(format!("`{at}` is not a module"));
        };
        let dict = match state.as_ref().map(|s| u.object(s)) {
            Some(Some(Object::Dict(d))) => d,
            None => return malformed(format!("`{at}` ({class}) has no attributes")),
            Some(_) => {
                return Err(TreeError::Unsupported(format!(
                    "`{at}` ({class}) keeps its state in a form of its own (a custom \
                     __setstate__), which psyrun does not read"
                )))
            }
        };
        let declared = match self.cache.get(&**class) {
            Some(d) => d.clone(),
            None => {
                let d = (self.declared)(class)?;
                self.cache.insert(class.to_string(), d.clone());
                d
            }
        };
        let key = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let tensor = |name: &str| match dict.get(name).map(|v| (v, u.object(v))) {
            Some((_, Some(Object::Tensor(t)))) => Ok(Some(t)),
            // An optional parameter left out (`bias=False`, MultiheadAttention's separate
            // projections): `state_dict()` skips it too.
            None | Some((Value::None, _)) => Ok(None),
            Some(_) => Err(TreeError::Malformed(format!(
                "`{}` is declared a parameter or buffer but is no tensor",
                key(name)
            ))),
        };
        let attributes = dict.items.iter().filter_map(|(k, v)| match k {
            Value::Str(k) => Some((&**k, v)),
            _ => None,
        });
        match &declared {
            Some(Declared {
                parameters,
                buffers: Some(buffers),
            }) => {
                for name in parameters.iter().chain(buffers) {
                    if let Some(t) = tensor(name)? {
                        self.out.push((key(name), t));
                    }
                }
            }
            Some(Declared {
                parameters,
                buffers: None,
            }) => {
                for name in parameters {
                    if let Some(t) = tensor(name)? {
                        self.out.push((key(name), t));
                    }
                }
                for (name, v) in attributes.clone() {
                    if let (Some(Object::Tensor(t)), false) =
                        (u.object(v), parameters.iter().any(|p| p == name))
                    {
                        self.out.push((key(name), t));
                    }
                }
            }
            None => {
                for (name, v) in attributes.clone() {
                    if let Some(Object::Tensor(t)) = u.object(v) {
                        self.out.push((key(name), t));
                    }
                }
            }
        }
        for (name, v) in attributes {
            if let Some(Object::Module { .. }) = u.object(v) {
                self.module(v, &key(name), depth + 1)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_map_to_their_code_files() {
        assert_eq!(
            code_file("__torch__.torch.nn.modules.conv.___torch_mangle_3.Conv2d"),
            Some((
                "code/__torch__/torch/nn/modules/conv/___torch_mangle_3.py".into(),
                "Conv2d"
            ))
        );
        assert_eq!(
            code_file("__torch__.Attn"),
            Some(("code/__torch__.py".into(), "Attn"))
        );
        assert_eq!(code_file("__torch__"), None);
        assert_eq!(code_file("__torch__.a/../b.C"), None);
        assert_eq!(code_file("os.system"), None);
    }

    #[test]
    fn declarations_are_read_from_the_class_header() {
        let code = "class A(Module):\n  __parameters__ = [\"w\", ]\n  w : Tensor\n\
                    class BatchNorm2d(Module):\n  __parameters__ = [\"weight\", \"bias\", ]\n  \
                    __buffers__ = [\"running_mean\", \"running_var\", \"num_batches_tracked\", ]\n  \
                    weight : Tensor\n  def forward(self):\n    return None\n\
                    class C(Module):\n  __parameters__ = []\n  __buffers__ = []\n";
        assert_eq!(
            declarations(code, "BatchNorm2d"),
            Some(Declared {
                parameters: vec!["weight".into(), "bias".into()],
                buffers: Some(vec![
                    "running_mean".into(),
                    "running_var".into(),
                    "num_batches_tracked".into()
                ]),
            })
        );
        assert_eq!(
            declarations(code, "A"),
            Some(Declared {
                parameters: vec!["w".into()],
                buffers: None
            })
        );
        assert_eq!(
            declarations(code, "C"),
            Some(Declared::default()).map(|d| Declared {
                buffers: Some(vec![]),
                ..d
            })
        );
        assert_eq!(declarations(code, "D"), None);
    }
}
