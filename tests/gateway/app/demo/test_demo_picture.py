"""DIR/demo.png: written and decodable; without matplotlib, a line saying how to get it."""

import sys

import pytest

from gateway.app.demo.phases import Phases
from gateway.app.demo.picture import MATPLOTLIB_MISSING, write_picture
from gateway.app.demo.readings import Reading


def _readings(start):
    return [Reading(start + t, "192.168.65.3", "52:54:00:12:34:56", -0.0007 * t if t < 30 else 0.0001, 0.0005,
                    "icmp-timestamp") for t in range(0, 60, 2)]


def test_the_picture_decodes_and_has_the_offset_in_it(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    phases = Phases()
    phases.begin("no time sync", 0.0)
    phases.begin("chronyd", 30.0)
    phases.end(60.0)
    path = tmp_path / "demo.png"
    assert write_picture(str(path), _readings(1796159964.0), phases.all, started_unix=1796159964.0,
                         title="test") is None
    pixels = image.imread(str(path))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400
    # not a blank picture: several colours (phases shaded, the points, the text)
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[2])[::97]}) > 5


def test_without_matplotlib_it_says_how_to_get_the_picture(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    path = tmp_path / "demo.png"
    why = write_picture(str(path), _readings(0.0), [], started_unix=0.0, title="test")
    assert why == MATPLOTLIB_MISSING and "pip install 'hostclock[demo]'" in why
    assert not path.exists()
