"""Config: type checks in from_dict (every kind of field, nested configs, unknown keys) and range checks when built."""
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from paper_distill.core import Config


@dataclass
class Inner(Config):
    lr: float = 0.1
    steps: int = 10

    def check(self): self.check_ranges(lr='(0, inf)', steps='[1, inf)')


@dataclass
class Outer(Config):
    n: int = 1
    lr: float = 0.5
    flag: bool = False
    name: str = 'mini'
    out: Path = Path('runs')
    edges: tuple = (0.7, 0.9)
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[str, float] = ('a', 1.0)
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    weights: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    inner: Inner = field(default_factory=Inner)
    maybe_inner: Inner | None = None
    p: float = 0.5
    kind: str = 'preference'

    def check(self): self.check_ranges(n='[0, inf)', p='[0, 1]', edges='(0, 1)', kind=('preference', 'uniform'))


def test_round_trip_and_conversions():
    c = Outer(inner=Inner(lr=0.3), maybe_inner=Inner(steps=3), model='x', weights={'a': 2.0})
    assert Outer.from_json(c.to_json()) == c
    d = Outer.from_dict({'lr': 1, 'out': 'a/b', 'edges': [0.1, 0.2], 'sizes': [3], 'pair': ['b', 2], 'inner': {'lr': 1}})
    assert d.lr == 1.0 and isinstance(d.lr, float) and isinstance(d.inner.lr, float)
    assert d.out == Path('a/b') and d.edges == (0.1, 0.2) and d.sizes == (3,) and d.pair == ('b', 2.0)


@pytest.mark.parametrize('key, value, message', [
    ('n', '3', r"Outer\.n: expected int, got '3' \(str\)"),
    ('n', True, r"Outer\.n: expected int, got True \(bool\)"),
    ('n', 2.5, r"Outer\.n: expected int, got 2\.5 \(float\)"),
    ('n', None, r"Outer\.n: expected int, got None"),
    ('lr', '0.5', r"Outer\.lr: expected float, got '0\.5' \(str\)"),
    ('lr', False, r"Outer\.lr: expected float, got False \(bool\)"),
    ('flag', 'yes', r"Outer\.flag: expected bool, got 'yes' \(str\)"),
    ('flag', 0, r"Outer\.flag: expected bool, got 0 \(int\)"),
    ('name', 3, r"Outer\.name: expected str, got 3 \(int\)"),
    ('out', 3, r"Outer\.out: expected Path, got 3 \(int\)"),
    ('edges', 0.5, r"Outer\.edges: expected tuple, got 0\.5 \(float\)"),
    ('sizes', [1, '2'], r"Outer\.sizes\[1\]: expected int, got '2' \(str\)"),
    ('pair', ['a'], r"Outer\.pair: expected tuple\[str, float\] \(2 values\), got \['a'\] \(1 values\)"),
    ('pair', [1, 1.0], r"Outer\.pair\[0\]: expected str, got 1 \(int\)"),
    ('seeds', [0, 'one'], r"Outer\.seeds\[1\]: expected int, got 'one'"),
    ('seeds', {'a': 1}, r"Outer\.seeds: expected list\[int\]"),
    ('weights', {'a': 'heavy'}, r"Outer\.weights\['a'\]: expected float, got 'heavy'"),
    ('weights', [1], r"Outer\.weights: expected dict\[str, float\]"),
    ('model', 3, r"Outer\.model: expected str, got 3 \(int\)"),
    ('inner', 3, r"Outer\.inner: expected Inner, got 3 \(int\)"),
])
def test_wrong_type_names_class_field_value_and_type(key, value, message):
    with pytest.raises((TypeError, ValueError), match=message): Outer.from_dict({key: value})


def test_nested_config_errors_name_both_levels():
    with pytest.raises(TypeError, match=r"Outer\.inner: Inner\.steps: expected int, got '10' \(str\)"):
        Outer.from_dict({'inner': {'steps': '10'}})
    with pytest.raises(TypeError, match=r"Outer\.maybe_inner: Inner\.lr: expected float, got 'x'"):
        Outer.from_dict({'maybe_inner': {'lr': 'x'}})
    with pytest.raises(ValueError, match=r"Outer\.inner: Inner: unknown key\(s\) \['stpes'\]"):
        Outer.from_dict({'inner': {'stpes': 3}})
    with pytest.raises(ValueError, match=r"Outer\.inner: Inner\.steps must be in \[1, inf\), got 0"):
        Outer.from_dict({'inner': {'steps': 0}})
    assert Outer.from_dict({'maybe_inner': None}).maybe_inner is None


def test_unknown_key_and_not_a_dict():
    with pytest.raises(ValueError, match=r"Outer: unknown key\(s\) \['nn'\]; known keys are"): Outer.from_dict({'nn': 1})
    with pytest.raises(TypeError, match="Outer.from_dict needs a dict, got list"): Outer.from_dict([1])


@pytest.mark.parametrize('kw, message', [
    (dict(p=1.5), r"Outer\.p must be in \[0, 1\], got 1\.5"),
    (dict(p=-0.01), r"Outer\.p must be in \[0, 1\], got -0\.01"),
    (dict(p=float('nan')), r"Outer\.p must be in \[0, 1\], got nan"),
    (dict(n=-1), r"Outer\.n must be in \[0, inf\), got -1"),
    (dict(edges=(0.5, 1.0)), r"Outer\.edges must be in \(0, 1\), got \(0\.5, 1\.0\)"),
    (dict(kind='random'), r"Outer\.kind must be 'preference' or 'uniform', got 'random'"),
])
def test_out_of_range_when_built(kw, message):
    with pytest.raises(ValueError, match=message): Outer(**kw)
    with pytest.raises(ValueError, match=message): Outer().replace(**kw)


def test_range_edges_and_non_numbers():
    assert Outer(p=0).p == 0 and Outer(p=1).p == 1 and Outer(n=0).n == 0
    with pytest.raises(TypeError, match=r"Outer\.p must be a number in \[0, 1\], got '0\.5' \(str\)"): Outer(p='0.5')
    with pytest.raises(ValueError, match=r"Inner\.lr must be in \(0, inf\), got 0"): Inner(lr=0)
    with pytest.raises(ValueError, match="bad range"): Config.check_ranges(Inner(), lr='0..1')


def _package_configs()->list:
    "Every Config subclass defined in the package's modules, with the instances the package itself builds."
    import importlib, pkgutil, paper_distill
    out = []
    for m in pkgutil.iter_modules(paper_distill.__path__):
        if m.name.startswith('_'): continue
        try: mod = importlib.import_module(f'paper_distill.{m.name}')
        except ImportError: continue    # an optional dependency is missing
        for v in vars(mod).values():
            if isinstance(v, type) and issubclass(v, Config) and v is not Config and v.__module__ == mod.__name__: out.append(v())
            if isinstance(v, dict): out += [o for o in v.values() if isinstance(o, Config)]   # e.g. the mini students' configs
    return out


def test_library_configs_round_trip():
    "Every config the package defines (and every config instance it ships) reads back its own JSON unchanged."
    cs = _package_configs()
    assert {'WorldConfig', 'SamplerConfig', 'StudentConfig'} <= {type(c).__name__ for c in cs}
    for c in cs: assert type(c).from_json(c.to_json()) == c, c


def test_library_configs_check():
    from paper_distill.sampling import SamplerConfig
    from paper_distill.world import WorldConfig
    assert SamplerConfig.from_json(SamplerConfig(kind='uniform', counts=(1, 1, 1, 3)).to_json()).counts == (1, 1, 1, 3)
    with pytest.raises(TypeError, match=r"WorldConfig\.n_items: expected int, got '240' \(str\)"): WorldConfig.from_json('{"n_items": "240"}')
    with pytest.raises(ValueError, match=r"WorldConfig\.teacher_temperature must be in \(0, inf\), got 0"): WorldConfig(teacher_temperature=0)
    with pytest.raises(ValueError, match="must be below n_items"): WorldConfig.smoke(n_catalog_val=200)
    with pytest.raises(ValueError, match=r"SamplerConfig: edges must be strictly increasing"): SamplerConfig(edges=(0.9, 0.7, 0.95))
    with pytest.raises(ValueError, match=r"SamplerConfig\.counts must be in \[0, inf\)"): SamplerConfig(counts=(1, -1, 1, 2))
    with pytest.raises(TypeError, match=r"SamplerConfig\.shuffle: expected bool, got 'no'"): SamplerConfig.from_dict({'shuffle': 'no'})
