"""TFLite metadata for Android text classifiers, written with MediaPipe's metadata writer.

MediaPipe's ``TextClassifier`` (and the LiteRT Task Library's BERT classifier) read the tokenizer, its
vocabulary and the label names from metadata packed inside the ``.tflite``, not from files beside it.
This module embeds them (``pip install 'edgeprune[android]'``); without mediapipe it reports a skip.

Recent mediapipe wheels (1.2.x, 0.10.35) ship ``metadata.py`` but not the compiled
``_pywrap_metadata_version`` it imports for one call, ``GetMinimumMetadataParserVersion``. When that
module is missing, :func:`_install_version_standin` registers a pure-Python stand-in computing the same
value from the metadata flatbuffer (see :func:`min_parser_version`).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from edgeprune.quiet import native_stderr_off

PYWRAP = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
INSTALL_HINT = "pip install 'edgeprune[android]'"
# MediaPipe's BERT writer names these three inputs in its tensor metadata, in this order
BERT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _version(s: str) -> tuple[int, ...]:
    return tuple(int(p) for p in s.split("."))


def min_parser_version(metadata_buf: bytes) -> str:
    """The smallest metadata parser version that understands every feature present in ``metadata_buf``.

    Versions are the "Added in" / History notes of mediapipe/tasks/metadata/metadata_schema.fbs
    (schema 1.5.0, lines 59-70): VOCABULARY file type 1.0.1; Bert/SentencePiece tokenizer options and
    subgraph input/output process units 1.1.0; tensor groups 1.2.0; regex tokenizer 1.2.1; audio
    properties 1.3.0; SCANN index file type 1.4.0; AssociatedFile.version 1.4.1; custom metadata 1.5.0.
    The base is 1.0.0. This walks the same members MediaPipe's C++ ``metadata_version.cc`` checks.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    found = ["1.0.0"]

    def files(owner: Any, n: int) -> None:
        for i in range(n):
            f = owner.AssociatedFiles(i)
            if f.Type() == fb.AssociatedFileType.VOCABULARY:
                found.append("1.0.1")
            if f.Type() == fb.AssociatedFileType.SCANN_INDEX_FILE:
                found.append("1.4.0")
            if f.Version() is not None:
                found.append("1.4.1")

    def units(get: Any, n: int) -> None:
        for i in range(n):
            t = get(i).OptionsType()
            if t in (fb.ProcessUnitOptions.BertTokenizerOptions, fb.ProcessUnitOptions.SentencePieceTokenizerOptions):
                found.append("1.1.0")
            elif t == fb.ProcessUnitOptions.RegexTokenizerOptions:
                found.append("1.2.1")

    def tensor(t: Any) -> None:
        files(t, t.AssociatedFilesLength())
        units(t.ProcessUnits, t.ProcessUnitsLength())
        c = t.Content()
        if c is not None and c.ContentPropertiesType() == fb.ContentProperties.AudioProperties:
            found.append("1.3.0")

    model = fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buf), 0)
    for s in range(model.SubgraphMetadataLength()):
        g = model.SubgraphMetadata(s)
        for i in range(g.InputTensorMetadataLength()):
            tensor(g.InputTensorMetadata(i))
        for i in range(g.OutputTensorMetadataLength()):
            tensor(g.OutputTensorMetadata(i))
        files(g, g.AssociatedFilesLength())
        if not g.InputProcessUnitsIsNone():
            found.append("1.1.0")
            units(g.InputProcessUnits, g.InputProcessUnitsLength())
        if not g.OutputProcessUnitsIsNone():
            found.append("1.1.0")
            units(g.OutputProcessUnits, g.OutputProcessUnitsLength())
        if not (g.InputTensorGroupsIsNone() and g.OutputTensorGroupsIsNone()):
            found.append("1.2.0")
        if not g.CustomMetadataIsNone():
            found.append("1.5.0")
    files(model, model.AssociatedFilesLength())
    return max(found, key=_version)


def _install_version_standin() -> bool:
    """Registers the stand-in ``_pywrap_metadata_version`` unless the compiled one imports; True if installed."""
    try:
        __import__(PYWRAP)
        return False
    except ImportError:
        pass
    parts = PYWRAP.split(".")
    for i in range(3, len(parts)):  # mediapipe.tasks.cc, .metadata, .python: empty namespace packages
        name = ".".join(parts[:i])
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = []  # type: ignore[attr-defined]
            sys.modules[name] = pkg
    mod = types.ModuleType(PYWRAP, "edgeprune stand-in for mediapipe's missing compiled module")
    mod.GetMinimumMetadataParserVersion = min_parser_version  # type: ignore[attr-defined]
    sys.modules[PYWRAP] = mod
    return True


def _writers() -> tuple[Any, Any]:
    with native_stderr_off():
        import mediapipe.tasks  # noqa: F401  (ImportError here means the extra is not installed)

        _install_version_standin()
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, text_classifier
    return metadata_writer, text_classifier


def _tensor_names(buf: bytes, signature_inputs: list[str]) -> list[str]:
    """The flatbuffer tensor names behind the ``serving_default`` signature's inputs, in the given order."""
    from mediapipe.tasks.metadata import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(bytearray(buf), 0)
    graph = model.Subgraphs(0)
    by_key: dict[str, str] = {}
    sig = model.SignatureDefs(0)
    for i in range(sig.InputsLength()):
        m = sig.Inputs(i)
        by_key[m.Name().decode()] = graph.Tensors(m.TensorIndex()).Name().decode()
    return [by_key[n] for n in signature_inputs]


def _stored_version(metadata_buf: bytes) -> str:
    """``ModelMetadata.min_parser_version`` as the populator wrote it."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    return fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buf), 0).MinParserVersion().decode()


def embed_metadata(tflite_bytes: bytes, vocab_path: str | Path, labels: list[str],
                   input_names: list[str]) -> tuple[bytes, dict[str, Any]] | None:
    """``tflite_bytes`` with the BERT text-classifier metadata packed in, and a record of what was written.

    ``input_names`` are the signature's input names; they must be :data:`BERT_INPUTS` (in any order).
    Returns None when mediapipe is not installed. Raises ValueError for a model the BERT writer cannot
    describe (not three WordPiece inputs, no labels).
    """
    try:
        metadata_writer, text_classifier = _writers()
    except ImportError:
        return None
    if sorted(input_names) != sorted(BERT_INPUTS):
        raise ValueError(f"MediaPipe's BERT text classifier takes inputs {list(BERT_INPUTS)}; this model has "
                         f"{input_names}")
    if not labels:
        raise ValueError("no class labels (a regression head); MediaPipe's TextClassifier classifies")
    from mediapipe.tasks.python.metadata import metadata

    ids, mask, segment = _tensor_names(tflite_bytes, list(BERT_INPUTS))
    with native_stderr_off():
        writer = text_classifier.MetadataWriter.create_for_bert_model(
            bytearray(tflite_bytes), metadata_writer.BertTokenizer(str(vocab_path)),
            metadata_writer.Labels().add(list(labels)), ids, mask, segment)
        out, _ = writer.populate()
        del writer  # its temp folder goes now, inside the quiet block
        shown = metadata.MetadataDisplayer.with_model_buffer(out)
        packed = sorted(shown.get_packed_associated_file_list())
        version = _stored_version(shown.get_metadata_buffer())
    record = {"embedded": True, "writer": "mediapipe text_classifier (BERT)",
              "min_parser_version": version, "associated_files": packed,
              "input_tensors": {"ids": ids, "mask": mask, "segment_ids": segment}}
    return bytes(out), record
