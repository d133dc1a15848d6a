"""Saving and loading models: one versioned ``.npz`` file, never a pickle.

A model file (by convention ``*.fem``) is a NumPy ``.npz`` archive written by
:func:`numpy.savez`.  It holds

* every array of the model (fitted arrays, array-valued constructor
  parameters, the running statistics of online EM, random generator keys) as
  a plain numeric ``.npy`` entry, and
* one entry :data:`METADATA_KEY`: a uint8 array of UTF-8 JSON with the format
  name :data:`FORMAT_NAME`, the format version :data:`FORMAT_VERSION`, the
  estimator class, the constructor parameters, the fitted state, the fastem
  and NumPy versions and a SHA-256 checksum over the metadata and all arrays.

Values are encoded as JSON trees; an array is a reference ``{"__array__":
name}`` to an archive entry, and the few other non-JSON values (tuples,
non-finite floats, NumPy scalars and dtypes, dicts with non-string keys,
deques (a hidden Markov model's ``monitor_.history``), ``RandomState`` objects, fastem's own state objects, a state object's
reference back to the model) are one-key objects whose key starts with
``"__"``.  Loading reads the archive with ``allow_pickle=False`` and rebuilds
only classes from two fixed allow-lists, both read from the family registry
(:mod:`fastem._registry`): the estimators of every family and the hidden
Markov models (:data:`fastem._registry.HMMS`), and the helper classes of the
file's own family (a hidden Markov model's: its ``ConvergenceMonitor``).  Nothing in a file can make fastem import
a module or run code.

A file may come from anyone, and its checksum proves only that it is intact
(whoever edits a file can recompute it).  So loading trusts nothing it has
not checked: every entry's compression method, encryption flag and declared
sizes (against limits set by the archive's own size) before anything is
inflated, every ``.npy`` header against its entry's size before the data are
read, the JSON's nesting depth before it is parsed, and finally the model as
a whole (:mod:`fastem._model_check`), which ``save`` also checks before it
writes.

Which attributes are saved: every public attribute ending with ``_`` (the
fitted attributes; lists of arrays, such as a categorical mixture's
``probabilities_`` and ``categories_``, included), plus, per class, the
private state its registry entry lists (what ``partial_fit`` continues
from).  A new estimator becomes saveable by its family's entry in
:data:`fastem._registry.FAMILIES` (its classes, the private state of its
online class, the helper classes that state holds), a new hidden Markov
model by its entry in :data:`fastem._registry.HMMS`; nothing here changes.
"""

import hashlib
import hmac
import json
import math
import os
import re
import secrets
import stat
import struct
import zipfile
import zlib
from collections import deque

import numpy as np
from numpy.lib import format as npy_format

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "METADATA_KEY", "SaveLoadMixin", "load", "save"]

#: The format name stored in every file (its "magic").
FORMAT_NAME = "fastem-model"
#: The format version this fastem writes; it reads every version up to this one.
FORMAT_VERSION = 1
#: The archive entry that holds the JSON metadata.
METADATA_KEY = "fastem_metadata"

#: NumPy dtype kinds an array (or scalar) may have in a file: bool, integers,
#: floats, complex, and fixed-width unicode.  Never object ('O'), which needs
#: pickle.
_ARRAY_KINDS = "biufcU"
#: A public fitted attribute: scikit-learn's trailing underscore.
_PUBLIC_FITTED = re.compile(r"[A-Za-z][A-Za-z0-9_]*_")
#: An attribute name a file may set on a rebuilt state object.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")
#: What an object array (e.g. ``categories_``) may hold: scalars stored exactly.
_OBJECT_ITEMS = (str, bool, int, float, np.bool_, np.integer, np.floating)
#: Lists of at least this many Python floats are stored as one float64 array.
_FLOAT_LIST_MIN = 16
#: What an archive may declare, checked before anything is inflated: its
#: entries together hold at most _SIZE_ALLOWANCE + _SIZE_FACTOR x the
#: archive's size (fastem stores entries uncompressed: 1 x), and none
#: inflates more than deflate's own limit of about 1032 x.
_SIZE_ALLOWANCE = 64 << 20
_SIZE_FACTOR = 8
_DEFLATE_MAX_RATIO = 1032
#: Deepest nesting of lists and objects in the metadata JSON (fastem writes 8 at most).
_MAX_JSON_DEPTH = 64
#: What reading a damaged archive raises (zipfile, zlib, numpy's .npy header).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError,
                   RuntimeError, EOFError, OSError, KeyError, ValueError, TypeError,
                   IndexError, SyntaxError, struct.error, UnicodeDecodeError, OverflowError,
                   MemoryError)


def _model_classes():
    """The allow-list of saveable estimators: class name -> (class, private
    attributes saved besides the public fitted ones), for every family of
    :mod:`fastem._registry` whose classes exist.

    Resolved at call time, not at import: the estimator modules import this
    module for :class:`SaveLoadMixin`.
    """
    from ._registry import model_classes

    return model_classes()


def _state_classes(kind=None):
    """The allow-list of helper objects a saved state of the estimator class
    named ``kind`` may hold (its family's; every family's if None); they are
    rebuilt without calling ``__init__``, from their attributes."""
    from ._registry import state_classes

    return state_classes(kind)


# ----------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------


def save(model, path):
    """Save a fastem model to one versioned file.

    Parameters
    ----------
    model : a fastem estimator
        A fitted or unfitted model (unfitted: its parameters only) of any
        registered family (``GaussianMixture``, ``BernoulliMixture``, ...,
        and their ``MiniBatch`` counterparts), or a fitted hidden Markov
        model (``GaussianHMM``, ``CategoricalHMM``, ``PoissonHMM``).
    path : str, os.PathLike or binary file object
        Where to write.  A path is written exactly as given (no ``.npz`` is
        appended; ``.fem`` is the convention), and an existing file there is
        replaced only once the new one is complete.  A path that exists but
        is not a regular file (a directory, FIFO, socket or device, also
        through a symbolic link) is refused; a symbolic link to a regular
        file is replaced by the new file, its target left as it was.  A file
        object opened for binary writing receives the archive at its current
        position.

    Raises
    ------
    TypeError
        If ``model`` is not an instance of one of fastem's saveable classes
        (subclasses included), or holds a value that cannot be stored without
        pickle (for instance a ``numpy.random.Generator`` as ``random_state``).
    ValueError
        If the model's state is one :func:`load` would refuse (invalid
        parameters, a partly fitted model, fitted arrays that disagree with
        the parameters or each other, for instance after ``set_params``), or
        ``path`` exists and is not a regular file.
    sklearn.exceptions.NotFittedError
        (a ValueError) If ``model`` is a hidden Markov model that is not
        fitted: those are saved fitted only.

    Notes
    -----
    A ``numpy.random.RandomState`` is stored as its exact generator state, so
    a loaded model draws the same numbers as the saved one would have.  The
    file is read back by :func:`load`; see ``docs/saving.md``.
    """
    arrays, meta_bytes = _encode_model(model)
    _check_model(model, f"Cannot save the {type(model).__name__}",
                 "fastem.load would refuse such a file. Restore what was changed after "
                 "fitting (set_params, attributes set by hand), or fit the model again.",
                 saving=True)
    if hasattr(path, "write"):
        _write_archive(path, arrays, meta_bytes)
        return
    path = os.fsdecode(os.fspath(path))
    _check_target(path)
    # write next to the target, then rename: an interrupted save never leaves
    # a truncated file in place of a good one
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as f:
            _write_archive(f, arrays, meta_bytes)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


#: What save would replace, by stat's file type test.
_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"))


def _check_target(path):
    """Refuse to replace what is not a regular file: save renames a new file
    over ``path``, which would replace a device, FIFO or socket node with a
    file.  A symbolic link is followed for the test; the link itself is then
    replaced (its target is never written)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # no such file (or a dangling link): a new file is written
        return
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
    raise ValueError(
        f"Cannot save to {path!r}: it is {kind}, and fastem.save writes regular files only "
        "(it would replace that node with a file). Pass the path of a new or existing "
        "regular file, or open the destination yourself and pass the binary file object."
    )


def load(path):
    """Load a model saved by :func:`save`.

    The file is read with ``allow_pickle=False``, in memory and time bounded
    by its size, and its checksum verified before anything is built; only
    fastem's own classes are instantiated, and the model they make is checked
    as a whole before it is returned (see ``docs/saving.md``).

    Parameters
    ----------
    path : str, os.PathLike or binary file object
        A file written by :func:`save` (any name), or a seekable file object
        opened for binary reading, positioned at the start of the archive.

    Returns
    -------
    model : a fastem estimator
        The model, with the same parameters and fitted state: it predicts
        exactly as the saved model, and an online (``MiniBatch...``) model
        continues ``partial_fit`` exactly as the saved one would have.

    Raises
    ------
    ValueError
        If the file is not a fastem model (a text file, a pickle, a ``.npy``,
        an ``.npz`` without fastem's metadata), is truncated or corrupted
        (including an archive that declares sizes, compression or encryption
        fastem does not read, or metadata nested too deep), was modified after
        it was saved (checksum mismatch), was written in a newer format
        version, names a class or parameters this fastem does not have, or
        describes a model whose state is inconsistent.  The message says what
        was expected, what was found and what to do.
    FileNotFoundError
        If ``path`` does not exist.
    """
    return decode_model(read_model_file(path))


def read_model_file(path):
    """The first half of :func:`load`: the file read, its metadata parsed
    and its checksum verified, without importing any estimator.  Returns
    what :func:`decode_model` builds the model from (the command line reads
    its data file while another thread decodes)."""
    name = _describe_source(path)
    arrays = _read_archive(path, name)
    meta = _read_metadata(arrays, name)
    _check_checksum(meta, arrays, name)
    return meta, arrays, name


def decode_model(contents):
    """The second half of :func:`load`: the model built and checked from
    what :func:`read_model_file` returned."""
    return _decode_model(*contents)


class SaveLoadMixin:
    """Adds :meth:`save` to an estimator; :func:`fastem.load` reads it back.

    The class must also be in the allow-list of ``fastem._io`` (the file names
    the class, and loading instantiates only allow-listed ones).
    """

    def save(self, path):
        """Save this model to one versioned file (see :func:`fastem.load`).

        Parameters
        ----------
        path : str, os.PathLike or binary file object
            Written exactly as given; ``.fem`` is the conventional extension.
            What is stored, the security notes and the versioning policy are in
            ``docs/saving.md``.
        """
        save(self, path)


# ----------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------


class _Encoder:
    """Turns values into JSON trees, collecting arrays and random states.
    ``model`` is the model being saved (a state object may refer back to
    it), ``state_classes`` the helper classes its family may store."""

    def __init__(self, model=None, state_classes=None):
        self.model = model
        self.state_classes = {} if state_classes is None else state_classes
        self.arrays = {}
        self.random_states = []
        self._rs_index = {}  # id(RandomState) -> index: shared objects stay shared
        self._rs_keep = []  # keeps those objects alive while ids are in use

    def array(self, a, where):
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", where)
        base, i = name, 1
        while name in self.arrays or name == METADATA_KEY:
            name, i = f"{base}.{i}", i + 1
        self.arrays[name] = a
        return {"__array__": name}

    def encode(self, value, where):
        """JSON tree for ``value``; ``where`` names it in errors and arrays."""
        if value is None or isinstance(value, (bool, str)):
            return value
        if self.model is not None and value is self.model:  # e.g. a recovery's estimator
            return {"__model__": 0}
        if isinstance(value, np.generic):
            return {"__scalar__": [_dtype_str(value.dtype, where), self._plain(value.item())]}
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return self._plain(value)
        if isinstance(value, np.ndarray):
            if value.dtype.kind == "O":
                if all(isinstance(v, str) for v in value.flat):
                    return {"__strings__": [list(value.shape), [str(v) for v in value.flat]]}
                # e.g. a categorical mixture's categories_: numbers, strings, flags
                if not all(isinstance(v, _OBJECT_ITEMS) for v in value.flat):
                    raise _unsupported(where, "an object array whose items are not all "
                                              "numbers, str or bool")
                return {"__objects__": [list(value.shape), [
                    self.encode(v, f"{where}.{i}") for i, v in enumerate(value.flat)]]}
            _dtype_str(value.dtype, where)
            return self.array(value, where)
        if isinstance(value, np.dtype):
            return {"__dtype__": _dtype_str(value, where)}
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            if len(value) >= _FLOAT_LIST_MIN and all(type(v) is float for v in value):
                # long float histories (lower_bounds_) as one float64 array
                return {"__floats__": self.array(np.array(value, dtype=np.float64), where)}
            return [self.encode(v, f"{where}.{i}") for i, v in enumerate(value)]
        if type(value) is deque:  # a ConvergenceMonitor's history
            return {"__deque__": [self.encode(list(value), where), value.maxlen]}
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in value):
                return {k: self.encode(v, f"{where}.{k}") for k, v in value.items()}
            return {"__dict__": [[self.encode(k, f"{where}.{i}k"), self.encode(v, f"{where}.{i}")]
                                 for i, (k, v) in enumerate(value.items())]}
        if isinstance(value, np.random.RandomState):
            return {"__random_state__": self._random_state(value, where)}
        kind = type(value).__name__
        if self.state_classes.get(kind) is type(value):
            attrs = {}
            for attr, v in vars(value).items():
                attrs[attr] = self.encode(v, f"{where}.{attr}")
            return {"__object__": [kind, attrs]}
        if isinstance(value, np.random.Generator):
            raise _unsupported(where, "a numpy.random.Generator",
                               " fastem's estimators take an int, None or a "
                               "numpy.random.RandomState as random_state.")
        raise _unsupported(where, f"a {type(value).__module__}.{type(value).__qualname__}")

    @staticmethod
    def _plain(x):
        """A Python scalar as JSON: non-finite floats as markers."""
        if isinstance(x, float) and not math.isfinite(x):
            return {"__float__": repr(x)}  # 'nan', 'inf', '-inf'
        if isinstance(x, complex):
            return {"__complex__": [_Encoder._plain(x.real), _Encoder._plain(x.imag)]}
        return x

    def _random_state(self, rs, where):
        key = id(rs)
        if key not in self._rs_index:
            state = rs.get_state(legacy=False)
            if state["bit_generator"] != "MT19937":
                raise _unsupported(where, f"a RandomState on {state['bit_generator']}",
                                   " Only RandomState's default MT19937 generator is stored.")
            i = len(self.random_states)
            self.random_states.append({
                "bit_generator": "MT19937",
                "key": self.array(np.asarray(state["state"]["key"]), f"random_state.{i}.key"),
                "pos": int(state["state"]["pos"]),
                "has_gauss": int(state["has_gauss"]),
                "gauss": self._plain(float(state["gauss"])),
            })
            self._rs_index[key] = i
            self._rs_keep.append(rs)
        return self._rs_index[key]


def _dtype_str(dtype, where):
    if dtype.kind not in _ARRAY_KINDS:
        raise _unsupported(where, f"an array or scalar of dtype {dtype}")
    return dtype.str


def _unsupported(where, what, advice=""):
    return TypeError(
        f"Cannot save {where}: it is {what}, which fastem's model file cannot store without "
        f"pickle (it stores numbers, strings, numeric arrays and fastem's own state).{advice} "
        "Change that value before saving, or use pickle or joblib for this model."
    )


def _encode_model(model):
    """The arrays and the metadata bytes (checksum included) of a file."""
    classes = _model_classes()
    name = type(model).__name__
    entry = classes.get(name)
    if entry is None or entry[0] is not type(model):
        raise TypeError(
            f"save expects a model of one of fastem's classes ({', '.join(classes)}), but got "
            f"{type(model).__module__}.{type(model).__qualname__}. Subclasses and other "
            "estimators cannot be saved by fastem.save; use pickle or joblib for them."
        )
    private = entry[1]
    enc = _Encoder(model, _state_classes(name))
    params = {k: enc.encode(v, f"params.{k}") for k, v in model.get_params(deep=False).items()}
    state = {}
    attrs = vars(model)
    for attr, value in attrs.items():
        if _PUBLIC_FITTED.fullmatch(attr):
            state[attr] = enc.encode(value, f"state.{attr}")
    for attr in private:
        if attr in attrs:
            state[attr] = enc.encode(attrs[attr], f"state.{attr}")
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "class": name,
        "fitted": any(_PUBLIC_FITTED.fullmatch(a) for a in attrs),
        "params": params,
        "state": state,
        "random_states": enc.random_states,
        "fastem_version": _fastem_version(),
        "numpy_version": np.__version__,
    }
    meta["checksum"] = {"algorithm": "sha256", "hexdigest": _digest(meta, enc.arrays)}
    return enc.arrays, _canonical(meta)


def _write_archive(f, arrays, meta_bytes):
    np.savez(f, **{METADATA_KEY: np.frombuffer(meta_bytes, dtype=np.uint8)}, **arrays)


def _fastem_version():
    from . import __version__

    return str(__version__)


def _canonical(meta):
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def _digest(meta, arrays):
    """SHA-256 over the metadata (without its checksum) and every array's
    name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    body = _canonical({k: v for k, v in meta.items() if k != "checksum"})
    h.update(len(body).to_bytes(8, "little") + body)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        head = json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8")
        data = a.tobytes()
        h.update(len(head).to_bytes(8, "little") + head)
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


# ----------------------------------------------------------------------
# reading and checking
# ----------------------------------------------------------------------


def _describe_source(path):
    if hasattr(path, "read"):
        return f"the file object {getattr(path, 'name', type(path).__name__)!r}"
    return repr(os.fsdecode(os.fspath(path)))


def _read_archive(path, name):
    """Every entry of the archive, each checked before it is read."""
    if hasattr(path, "read"):
        return _read_archive_from(path, name)
    with open(os.fspath(path), "rb") as f:
        return _read_archive_from(f, name)


class _Damaged(ValueError):
    """What an archive declares contradicts itself or fastem's limits."""


class _Refused(ValueError):
    """A complete refusal message (not a damaged archive)."""


def _read_archive_from(f, name):
    if not (hasattr(f, "seekable") and f.seekable()):
        raise ValueError(f"Cannot load {name}: fastem.load reads a seekable binary file, but this "
                         "file object cannot seek. Pass a path, or read the data into "
                         "io.BytesIO(...) first.")
    pos = f.tell()
    head = f.read(8)
    f.seek(0, os.SEEK_END)
    size = f.tell() - pos
    f.seek(pos)
    if not head.startswith(_ZIP_SIGNATURES):
        raise ValueError(f"Cannot load {name}: expected a fastem model file (a .npz zip "
                         f"archive written by fastem.save), but {_sniff(head)}.")
    try:
        with zipfile.ZipFile(f) as zf:
            return {info.filename[:-4]: _read_entry(zf, info, name)
                    for info in _checked_entries(zf.infolist(), size)}
    except _Refused:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise _corrupted(name, exc) from exc


def _checked_entries(infos, archive_size):
    """The archive's entries, once what each declares (method, encryption,
    sizes) lets it be read in memory and time bounded by the archive's size."""
    limit = _SIZE_ALLOWANCE + _SIZE_FACTOR * archive_size
    names, total = set(), 0
    for info in infos:
        where = f"its entry {info.filename!r}"
        if not info.filename.endswith(".npy") or info.filename in names:
            raise _Damaged(f"{where} is not a .npy array, or is there twice")
        names.add(info.filename)
        if info.flag_bits & 0x1:
            raise _Damaged(f"{where} is marked as encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Damaged(f"{where} uses compression method {info.compress_type}; fastem "
                           "reads stored (0) and deflated (8) entries only")
        ratio = 1 if info.compress_type == zipfile.ZIP_STORED else _DEFLATE_MAX_RATIO
        total += info.file_size
        if (info.compress_size > archive_size or info.file_size > ratio * info.compress_size
                or total > limit):
            raise _Damaged(
                f"{where} declares {info.file_size} bytes from {info.compress_size} bytes "
                f"in an archive of {archive_size} bytes (at most {ratio} x its compressed "
                f"size, and {limit} bytes for all entries)")
    return infos


def _read_entry(zf, info, name):
    """One ``.npy`` entry; its header is checked against the entry's
    declared size before its data are read."""
    where = f"its entry {info.filename!r}"
    with zf.open(info) as fp:
        version = npy_format.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise _Damaged(f"{where} is a .npy of format version {version}, which numpy.savez "
                           "does not write for numeric arrays")
        read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                       else npy_format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fp)
        if dtype.hasobject:
            raise _Refused(
                f"Cannot load {name}: it holds an array of pickled Python objects, which files "
                "written by fastem.save never contain, and fastem.load never unpickles "
                "(unpickling can run code). Do not use this file; save the model again from "
                "its source.")
        if (dtype.kind not in _ARRAY_KINDS or dtype.names is not None
                or dtype.subdtype is not None or dtype.itemsize == 0):
            raise _Damaged(f"{where} holds an array of dtype {dtype}, which fastem's files "
                           "never contain")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if fp.tell() + nbytes != info.file_size:
            raise _Damaged(f"{where} declares an array of shape {shape} and dtype {dtype} "
                           f"({nbytes} bytes), but holds {info.file_size - fp.tell()} bytes")
        data = bytearray(nbytes)
        view, got = memoryview(data), 0
        while got < nbytes:
            n = fp.readinto(view[got:])
            if not n:
                raise _Damaged(f"{where} ends after {got} of its {nbytes} bytes")
            got += n
    if count == 0:
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=count).reshape(
        shape, order="F" if fortran else "C")


def _corrupted(name, exc):
    detail = str(exc) if isinstance(exc, _Damaged) else f"{type(exc).__name__}: {exc}"
    return ValueError(
        f"Cannot load {name}: it starts like a .npz archive but cannot be read as one "
        f"({detail}); the file is truncated or corrupted. Save the "
        "model again, or copy the file again from its source."
    )


def _sniff(head):
    """What a file that is not a zip archive seems to be."""
    if not head:
        return "the file is empty"
    if head[:1] == b"\x80":
        return ("it is a Python pickle. fastem.load never unpickles (unpickling can run "
                "code); if you trust its origin, read it with pickle.load or joblib.load")
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array (numpy.save); read it with numpy.load"
    return (f"it starts with {head!r} instead of the zip signature b'PK\\x03\\x04'. "
            "Pass a file written by fastem.save (or model.save)")


def _read_metadata(arrays, name):
    raw = arrays.get(METADATA_KEY)
    if raw is None:
        found = ", ".join(sorted(arrays)[:8]) or "none"
        raise ValueError(
            f"Cannot load {name}: it is a .npz archive but not a fastem model: it has no "
            f"{METADATA_KEY!r} entry (its entries: {found}). Read plain arrays with "
            "numpy.load; fastem.load reads files written by fastem.save."
        )
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise TypeError(f"dtype {raw.dtype}, shape {raw.shape}")
        text = raw.tobytes()
        depth = _json_depth(text)
        if depth > _MAX_JSON_DEPTH:  # before json.loads, which recurses per level
            raise TypeError(f"lists and objects nested {depth} deep, deeper than the "
                            f"{_MAX_JSON_DEPTH} levels fastem reads")
        meta = json.loads(text.decode("utf-8"))
        if not isinstance(meta, dict):
            raise TypeError(f"a JSON {type(meta).__name__}")
    except (TypeError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError, long ints
        raise ValueError(
            f"Cannot load {name}: its {METADATA_KEY!r} entry should be UTF-8 JSON in a uint8 "
            f"array, but it is not ({exc}); the file is corrupted. Save the model again."
        ) from exc
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(
            f"Cannot load {name}: expected the format {FORMAT_NAME!r} in its metadata but "
            f"found {meta.get('format')!r}; it was not written by fastem.save."
        )
    version = meta.get("format_version")
    writer = meta.get("fastem_version", "unknown")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(
            f"Cannot load {name}: expected an integer format version >= 1 but found "
            f"{version!r}; the file is corrupted. Save the model again."
        )
    if version > FORMAT_VERSION:
        raise ValueError(
            f"Cannot load {name}: it was written in model format version {version} (by "
            f"fastem {writer}), but this fastem ({_fastem_version()}) reads format versions "
            f"up to {FORMAT_VERSION}. Upgrade fastem (pip install -U fastem) to load it."
        )
    return meta


def _json_depth(text, chunk=1 << 18):
    """The deepest nesting of arrays and objects in the JSON ``text``
    (bytes), found without parsing: NumPy over chunks, in linear time and
    bounded memory.  Brackets inside strings do not count; a quote after an
    odd run of backslashes is part of a string."""
    deepest = depth = run = 0  # run: backslashes just before the chunk
    inside = 0  # 1 within a string at the chunk's start
    for start in range(0, len(text), chunk):
        b = np.frombuffer(text, np.uint8, count=min(chunk, len(text) - start), offset=start)
        # index of the last character that is not a backslash, at or before each
        last = np.maximum.accumulate(np.where(b == 0x5C, -1, np.arange(b.size)))
        q = np.flatnonzero(b == 0x22)
        before = last[np.maximum(q - 1, 0)]
        slashes = np.where(q > 0, q - 1 - before, 0) + np.where((q == 0) | (before < 0), run, 0)
        quote = np.zeros(b.size, dtype=np.int8)
        quote[q[slashes % 2 == 0]] = 1
        in_string = (np.cumsum(quote, dtype=np.int64) + inside) % 2 == 1
        step = (np.isin(b, (0x5B, 0x7B)).astype(np.int8) - np.isin(b, (0x5D, 0x7D)))
        step[in_string] = 0
        levels = depth + np.cumsum(step, dtype=np.int64)
        deepest = max(deepest, int(levels.max()))
        depth, inside = int(levels[-1]), int(in_string[-1])
        run = run + b.size if last[-1] < 0 else b.size - 1 - int(last[-1])
        if deepest > _MAX_JSON_DEPTH:
            break
    return deepest


def _check_checksum(meta, arrays, name):
    checksum = meta.get("checksum")
    if (not isinstance(checksum, dict) or checksum.get("algorithm") != "sha256"
            or not isinstance(checksum.get("hexdigest"), str)):
        raise ValueError(
            f"Cannot load {name}: expected a sha256 checksum in its metadata but found "
            f"{checksum!r}; the file is corrupted or was edited. Save the model again."
        )
    data = {k: v for k, v in arrays.items() if k != METADATA_KEY}
    actual = _digest(meta, data)
    if not hmac.compare_digest(actual, checksum["hexdigest"]):
        raise ValueError(
            f"Cannot load {name}: its checksum does not match its contents (stored sha256 "
            f"{checksum['hexdigest'][:16]}..., computed {actual[:16]}...): the file was "
            "modified or corrupted after it was saved. Do not use it; save the model again "
            "from its source."
        )


# ----------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------


class _FileError(ValueError):
    """A file's content that this fastem cannot decode."""


class _Decoder:
    """Rebuilds values from JSON trees written by :class:`_Encoder`."""

    def __init__(self, arrays, random_states, name, state_classes=None):
        self.arrays = arrays
        self.name = name
        self.state_classes = {} if state_classes is None else state_classes
        self.model = None  # the model being built, once its parameters are set
        self._rs_specs = random_states if isinstance(random_states, list) else []
        self._rs = {}

    def fail(self, where, what):
        return _FileError(
            f"Cannot load {self.name}: {where} holds {what}, which this fastem "
            f"({_fastem_version()}) cannot read. The file is corrupted, or it was written "
            "by a newer fastem: upgrade fastem or save the model again."
        )

    def decode(self, node, where):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{where}.{i}") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            raise self.fail(where, f"a JSON {type(node).__name__}")
        markers = [k for k in node if k.startswith("__")]
        if not markers:
            return {k: self.decode(v, f"{where}.{k}") for k, v in node.items()}
        if len(node) != 1:
            raise self.fail(where, f"an object with the keys {sorted(node)}")
        (marker, arg), = node.items()
        handler = getattr(self, "_" + marker.strip("_"), None) if marker in _MARKERS else None
        if handler is None:
            raise self.fail(where, f"the unknown marker {marker!r}")
        try:
            return handler(arg, where)
        except _FileError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
                MemoryError) as exc:
            raise self.fail(where, f"a malformed {marker} ({type(exc).__name__}: {exc})") \
                from exc

    def _array(self, arg, where):
        if not isinstance(arg, str) or arg == METADATA_KEY or arg not in self.arrays:
            raise self.fail(where, f"a reference to a missing array {arg!r}")
        a = self.arrays[arg]
        self._dtype(a.dtype.str, where)
        return a

    def _floats(self, arg, where):
        a = self.decode(arg, where)
        if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.ndim != 1:
            raise self.fail(where, "a float list that is not a 1-d float64 array")
        return a.tolist()

    def _scalar(self, arg, where):
        dtype_str, value = arg
        dtype = self._dtype(dtype_str, where)
        if dtype.kind not in "biufc" or dtype.itemsize > 32:  # NumPy's numeric scalars
            raise self.fail(where, f"a scalar of dtype {dtype}")
        return np.array(self._plain(value, where), dtype=dtype)[()]

    def _dtype(self, arg, where):
        dtype = np.dtype(str(arg))
        if dtype.kind not in _ARRAY_KINDS:
            raise self.fail(where, f"the dtype {dtype}")
        return dtype

    def _float(self, arg, where):
        if arg not in ("nan", "inf", "-inf"):
            raise self.fail(where, f"the float {arg!r}")
        return float(arg)

    def _complex(self, arg, where):
        re_, im = arg
        return complex(self._plain(re_, where), self._plain(im, where))

    def _plain(self, value, where):
        if isinstance(value, dict):
            return self.decode(value, where)
        if value is None or isinstance(value, (list, str)):
            raise self.fail(where, f"the scalar {value!r}")
        return value

    def _strings(self, arg, where):
        shape, items = arg
        shape = tuple(int(s) for s in shape)
        if not all(isinstance(s, str) for s in items) or len(items) != math.prod(shape):
            raise self.fail(where, "a malformed string array")
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(shape)

    def _objects(self, arg, where):
        shape, items = arg
        shape = tuple(int(s) for s in shape)
        if not isinstance(items, list) or any(s < 0 for s in shape) \
                or len(items) != math.prod(shape):
            raise self.fail(where, "a malformed object array")
        values = [self.decode(v, f"{where}.{i}") for i, v in enumerate(items)]
        if not all(isinstance(v, _OBJECT_ITEMS) for v in values):
            raise self.fail(where, "an object array of items that are not numbers, str or bool")
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out.reshape(shape)

    def _tuple(self, arg, where):
        if not isinstance(arg, list):
            raise self.fail(where, "a malformed tuple")
        return tuple(self.decode(v, f"{where}.{i}") for i, v in enumerate(arg))

    def _deque(self, arg, where):
        items, maxlen = arg
        items = self.decode(items, where)
        if not isinstance(items, list) or not (maxlen is None or (
                isinstance(maxlen, int) and not isinstance(maxlen, bool) and maxlen >= 0)):
            raise self.fail(where, "a malformed deque")
        return deque(items, maxlen=maxlen)

    def _dict(self, arg, where):
        out = {}
        for i, (k, v) in enumerate(arg):
            out[self.decode(k, f"{where}.{i}k")] = self.decode(v, f"{where}.{i}")
        return out

    def _random_state(self, arg, where):
        if isinstance(arg, bool) or not isinstance(arg, int) or not (
                0 <= arg < len(self._rs_specs)):
            raise self.fail(where, f"a reference to a missing random state {arg!r}")
        if arg not in self._rs:
            spec = self._rs_specs[arg]
            if spec.get("bit_generator") != "MT19937":
                raise self.fail(where, f"a {spec.get('bit_generator')!r} random state")
            key = self.decode(spec["key"], f"random_state.{arg}.key")
            rs = np.random.RandomState()
            rs.set_state({"bit_generator": "MT19937",
                          "state": {"key": key, "pos": int(spec["pos"])},
                          "has_gauss": int(spec["has_gauss"]),
                          "gauss": float(self._plain(spec["gauss"], where))})
            self._rs[arg] = rs
        return self._rs[arg]

    def _object(self, arg, where):
        kind, attrs = arg
        cls = self.state_classes.get(kind) if isinstance(kind, str) else None
        if cls is None or not isinstance(attrs, dict):
            raise self.fail(where, f"an object of the class {kind!r}, which is not one of "
                                   f"{sorted(self.state_classes)}")
        obj = cls.__new__(cls)
        for attr, v in attrs.items():
            if not _IDENTIFIER.fullmatch(attr) or attr.startswith("__"):
                raise self.fail(where, f"the attribute name {attr!r}")
            obj.__dict__[attr] = self.decode(v, f"{where}.{attr}")
        return obj

    def _model(self, arg, where):
        if arg != 0 or isinstance(arg, bool) or self.model is None:
            raise self.fail(where, "a reference to the model outside its state")
        return self.model


_MARKERS = ("__array__", "__floats__", "__scalar__", "__dtype__", "__float__", "__complex__",
            "__strings__", "__objects__", "__tuple__", "__deque__", "__dict__",
            "__random_state__", "__object__", "__model__")


def _decode_model(meta, arrays, name):
    classes = _model_classes()
    kind = meta.get("class")
    if not isinstance(kind, str) or kind not in classes:
        raise ValueError(
            f"Cannot load {name}: it names the class {kind!r}, but fastem loads only its own "
            f"classes ({', '.join(classes)}). It was written by a newer fastem (upgrade "
            "fastem) or is not a fastem model."
        )
    cls, private = classes[kind]
    dec = _Decoder(arrays, meta.get("random_states"), name, _state_classes(kind))
    params, state = meta.get("params"), meta.get("state")
    if not isinstance(params, dict) or not isinstance(state, dict):
        raise dec.fail("the metadata", "no 'params' or no 'state' object")
    accepted = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"Cannot load {name}: it sets the parameters {unknown} that {kind} of this fastem "
            f"({_fastem_version()}) does not have (the file was written by fastem "
            f"{meta.get('fastem_version', 'unknown')}). Load it with that fastem version or "
            "a newer one."
        )
    model = cls(**{k: dec.decode(v, f"params.{k}") for k, v in params.items()})
    dec.model = model
    for attr, node in state.items():
        if not (_PUBLIC_FITTED.fullmatch(attr) or attr in private):
            raise dec.fail("the metadata", f"the state attribute {attr!r}, which {kind} "
                                           "does not save")
        model.__dict__[attr] = dec.decode(node, f"state.{attr}")
    _check_model(model, f"Cannot load {name}", "The file was edited or corrupted: do not "
                 "use it; save the model again from its source.")
    return model


def _check_model(model, what, advice, saving=False):
    """The model's state as :func:`fastem._model_check.check_model` checks
    it; a contradiction raises a ValueError that says ``what`` failed, why,
    and ``advice`` (saving an unfitted hidden Markov model: scikit-learn's
    NotFittedError, a ValueError)."""
    from ._model_check import InconsistentModel, NotFitted, check_model

    try:
        check_model(model)
    except NotFitted as exc:
        if not saving:
            raise ValueError(f"{what}: {exc}. {advice}") from None
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"{what}: {exc}.") from None
    except InconsistentModel as exc:
        raise ValueError(f"{what}: {exc}. {advice}") from None
