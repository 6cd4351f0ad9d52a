"""The worker's Faust app keeps its files under the data directory, not the working one."""

from pathlib import Path

from streams.app import create_faust_app
from tests.conftest import make_settings


def test_faust_keeps_its_directory_under_the_data_directory(tmp_path: Path) -> None:
    settings = make_settings(data_dir=tmp_path / "data", faust_app_id="fk-test")
    app = create_faust_app(settings, store=None)  # type: ignore[arg-type]
    assert Path(app.conf.datadir).resolve().is_relative_to((tmp_path / "data").resolve())
