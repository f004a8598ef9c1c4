"""Typed configuration: dataclasses that load from and save to JSON or YAML.

Unknown keys are errors (a typo must not silently fall back to a default). This module
imports no torch: the runtime reads model configurations from export manifests.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from dff.errors import ConfigError

T = TypeVar("T")

FeatureArch = Literal["resnet50", "resnet101", "small", "tiny"]
FlowArch = Literal["simple", "half", "inception", "tiny"]
Task = Literal["segmentation", "detection"]
#: N_feat's output stride: the paper's 16, or 8 (a dilated conv4) for small frames (detection only).
OutputStride = Literal[8, 16]
#: Feature networks with an R-FCN head (dff.detection.model.HEAD_BUILDERS).
DETECTION_FEATURES = ("resnet50", "resnet101", "tiny")

#: ImageNet statistics in RGB order, on the 0..255 scale (the feature nets' convention).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class ModelConfig:
    """The three networks of the paper, N_feat, F and N_task, and their input convention.

    ``num_classes`` counts the score maps of N_task: the paper's C categories plus
    background (Section 4), so C + 1. ``task`` says what N_task is: per-pixel labels
    (segmentation) or R-FCN boxes (detection); configurations written before it existed
    were all segmentation, which is why that is the default.
    """

    task: Task = "segmentation"

    feature: FeatureArch = "resnet101"
    flow: FlowArch = "simple"
    num_classes: int = 19
    #: Width of f; None takes the architecture's: 1024 for the ResNets (Section 4), 128 for ``small``, 32 for ``tiny``.
    feature_channels: int | None = None
    frozen_bn: bool = False
    #: Feature grid stride; configurations written before it existed had 16, the default.
    output_stride: OutputStride = 16
    class_names: tuple[str, ...] = ()
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if not (self.num_classes >= 2):
            raise ConfigError(f"num_classes must be >= 2 (C categories + background), got {self.num_classes}")
        if not (self.feature_channels is None or self.feature_channels >= 1):
            raise ConfigError(f"feature_channels must be >= 1, got {self.feature_channels}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(
                f"class_names has {len(self.class_names)} names but num_classes is {self.num_classes}"
            )
        if not (self.task != "detection" or self.feature in DETECTION_FEATURES):
            raise ConfigError(
                f"detection has an R-FCN head for the feature networks {list(DETECTION_FEATURES)}, got {self.feature!r}"
            )
        if not (self.output_stride == 16 or self.task == "detection"):
            raise ConfigError(
                f"output_stride {self.output_stride} is for detection only (segmentation up-samples from stride 16); "
                "use output_stride 16 or task detection"
            )
        if not (len(self.mean) == 3 and len(self.std) == 3 and all(s > 0 for s in self.std)):
            raise ConfigError(f"mean and std need 3 values each, std > 0; got mean={self.mean}, std={self.std}")

    @property
    def channels(self) -> int:
        """The resolved width of the features f."""
        if self.feature_channels is not None:
            return self.feature_channels
        return {"tiny": 32, "small": 128}.get(self.feature, 1024)

    @property
    def names(self) -> tuple[str, ...]:
        """Class names, or ``class0``… where none were given."""
        return self.class_names or tuple(f"class{i}" for i in range(self.num_classes))


def from_dict(cls: type[T], data: Any, where: str = "config") -> T:
    """Build dataclass ``cls`` from plain data, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for {cls.__name__}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise ConfigError(f"{where}: {error}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin is Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(hint))}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        errors = []
        for option in (a for a in get_args(hint) if a is not type(None)):
            try:
                return _convert(option, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError("; ".join(errors))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = get_args(hint)
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is None and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(item or args[i], v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-ready data (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def load_config(cls: type[T], path: str | Path) -> T:
    """Load ``cls`` from a ``.json``, ``.yaml`` or ``.yml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as error:  # noqa: BLE001 - any parse failure is the user's file
        raise ConfigError(f"config file {path} cannot be parsed: {error}") from None
    return from_dict(cls, data, where=str(path))

