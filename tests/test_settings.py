"""Settings: CMR_* env > .env > YAML > defaults; bad values are ConfigErrors naming the variable."""
from __future__ import annotations

import pytest

from comfyui_model_resolver.errors import ConfigError
from comfyui_model_resolver.settings import Settings


def test_defaults():
    s = Settings.load({}, env_file="/nonexistent")
    assert (s.api_port, s.gradio_port, s.max_concurrent_downloads, s.download_timeout) == (5002, 5001, 3, 300)
    assert s.hf_endpoint == "https://huggingface.co" and s.civitai_base_url == "https://civitai.com"
    assert "huggingface.co" in s.all_allowed_hosts


def test_precedence_env_over_dotenv_over_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("api_port: 6000\nmax_concurrent_downloads: 5\nlog_level: debug\nCMR_GRADIO_PORT: 7000\n")
    e = tmp_path / ".env"
    e.write_text("CMR_MAX_CONCURRENT_DOWNLOADS=6\nCMR_DOWNLOAD_TIMEOUT=12\n")
    s = Settings.load({"CMR_DOWNLOAD_TIMEOUT": "99", "CMR_ALLOWED_HOSTS": "127.0.0.1:8080, localhost:9"},
                      env_file=e, yaml_file=y)
    assert s.api_port == 6000 and s.gradio_port == 7000 and s.log_level == "DEBUG"
    assert s.max_concurrent_downloads == 6
    assert s.download_timeout == 99
    assert s.allowed_hosts == ("127.0.0.1:8080", "localhost:9")


def test_hf_endpoint_fallback():
    assert Settings.load({"HF_ENDPOINT": "http://127.0.0.1:9/"}, env_file="/x").hf_endpoint == "http://127.0.0.1:9"
    s = Settings.load({"HF_ENDPOINT": "http://a", "CMR_HF_ENDPOINT": "http://b"}, env_file="/x")
    assert s.hf_endpoint == "http://b"


def test_secrets_are_never_shown():
    s = Settings.load({"CMR_HF_TOKEN": "hf_secret_value", "CMR_CIVITAI_API_KEY": "civ"}, env_file="/x")
    assert s.hf_token.get_secret_value() == "hf_secret_value"
    dumped = str(s.public_dict()) + repr(s) + str(s)
    assert "hf_secret_value" not in dumped and "civ'" not in dumped
    assert s.public_dict()["hf_token"] == {"set": True}


@pytest.mark.parametrize("env,var", [({"CMR_API_PORT": "abc"}, "CMR_API_PORT"),
                                     ({"CMR_MAX_CONCURRENT_DOWNLOADS": "0"}, "CMR_MAX_CONCURRENT_DOWNLOADS"),
                                     ({"CMR_HF_ENDPOINT": "ftp://x"}, "CMR_HF_ENDPOINT"),
                                     ({"CMR_LOG_LEVEL": "LOUD"}, "CMR_LOG_LEVEL")])
def test_bad_values_name_the_variable(env, var):
    with pytest.raises(ConfigError, match=var):
        Settings.load(env, env_file="/x")


def test_bad_yaml(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("nope: 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'nope'"):
        Settings.load({}, env_file="/x", yaml_file=y)
    y.write_text("[1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Settings.load({}, env_file="/x", yaml_file=y)


def test_derived_paths(tmp_path):
    (tmp_path / "extra_model_paths.yaml").write_text("a:\n  loras: /x\n")
    s = Settings.load({"CMR_COMFYUI_ROOT": str(tmp_path)}, env_file="/x")
    assert s.effective_models_root == tmp_path / "models"
    assert s.effective_extra_model_paths == (tmp_path / "extra_model_paths.yaml",)
