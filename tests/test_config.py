import pytest

from allele.config import Settings, load_settings
from allele.errors import ConfigError


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.resolved_store_url == "sqlite:///.allele/results.db"
    assert s.observe.sample_interval_s == 1.0
    assert s.llm.provider == "llamacpp"


def test_env_prefix_and_nesting(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLELE_STORE_URL", "postgresql+psycopg://localhost/x")
    monkeypatch.setenv("ALLELE_OBSERVE__SAMPLE_INTERVAL_S", "0.25")
    monkeypatch.setenv("ALLELE_LLM__BASE_URL", "http://127.0.0.1:9999/v1")
    s = load_settings()
    assert s.resolved_store_url == "postgresql+psycopg://localhost/x"
    assert s.observe.sample_interval_s == 0.25
    assert s.llm.base_url == "http://127.0.0.1:9999/v1"


def test_toml_file_and_precedence(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "allele.toml").write_text(
        'data_dir = "results"\n[observe]\nring_size = 64\n[llm]\nmodel = "tiny"\n')
    s = load_settings()
    assert s.resolved_store_url == "sqlite:///results/results.db"
    assert s.observe.ring_size == 64 and s.llm.model == "tiny"
    monkeypatch.setenv("ALLELE_OBSERVE__RING_SIZE", "128")
    assert load_settings().observe.ring_size == 128  # environment beats the file
    assert load_settings(data_dir="x").data_dir.name == "x"  # arguments beat both


def test_invalid_settings_are_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALLELE_OBSERVE__SAMPLE_INTERVAL_S", "-1")
    with pytest.raises(ConfigError, match=r"observe\.sample_interval_s"):
        load_settings()


def test_unknown_key_in_file_is_rejected(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "allele.toml").write_text('colour = "red"\n')
    with pytest.raises(ConfigError, match="colour"):
        load_settings()
    assert isinstance(Settings.model_fields, dict)
