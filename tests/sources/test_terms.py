"""What a file name says: core stem, variant, family, search queries (pure)."""
from __future__ import annotations

from hypothesis import given, strategies as st

from comfyui_model_resolver.sources.terms import (
    analyse_name, distinctive_token, name_similarity, preferred_publishers, search_queries, variant_set)


def test_variants_are_stripped_from_the_core():
    n = analyse_name("split_files/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    assert (n.basename, n.core, n.variant) == ("umt5_xxl_fp8_e4m3fn_scaled.safetensors", "umt5_xxl",
                                               ("fp8", "e4m3fn", "scaled"))
    q = analyse_name("flux1-dev-Q4_K_M.gguf")
    assert q.core == "flux1_dev" and q.variant == ("q4_k_m",) and q.ext == ".gguf"
    p = analyse_name("v1-5-pruned-emaonly.safetensors")
    assert p.core == "v1_5" and set(p.variant) == {"pruned", "emaonly"}


def test_precision_variants_share_a_key_but_not_a_variant():
    a, b = analyse_name("wan2.1_t2v_14B_bf16.safetensors"), analyse_name("wan2.1_t2v_14B_fp8_e4m3fn.safetensors")
    assert a.key == b.key and variant_set(a) != variant_set(b)
    c = analyse_name("Wan2_1-T2V-14B_fp8_e4m3fn.safetensors")
    assert c.key == b.key  # separators do not matter


def test_families_and_publishers():
    assert analyse_name("ltx-2.3-22b-dev-fp8.safetensors").family.name == "ltx"
    assert preferred_publishers(analyse_name("ltx-2.3-22b-dev-fp8.safetensors"), "checkpoints")[0] == "Lightricks"
    assert preferred_publishers(analyse_name("t5xxl_fp16.safetensors"), "text_encoders")[0] == "comfyanonymous"
    assert "Comfy-Org" in preferred_publishers(analyse_name("mystery.safetensors"), None)


def test_search_queries_keep_the_writers_spelling_and_find_rare_words():
    qs = search_queries(analyse_name("Qwen_Image_Edit_2511-SYSTMS_INFL8.safetensors"))
    assert qs[0] == "Qwen_Image_Edit_2511-SYSTMS_INFL8" and "SYSTMS" in qs
    assert search_queries(analyse_name("wan2.1_fun_control_1.3B_bf16.safetensors"))[0] == "wan2.1_fun_control_1.3B"
    assert distinctive_token(analyse_name("NetaYumev35_pretrained_all_in_one.safetensors")) == "NetaYume"
    assert len(search_queries(analyse_name("a_b_c_d_e_f.safetensors"), limit=3)) <= 3


def test_similarity():
    a = analyse_name("Qwen_Image_Edit_2511-SYSTMS_INFL8.safetensors")
    b = analyse_name("SYSTMS_INFL8_LoRA_Qwen_Image_Edit_2511.safetensors")
    assert name_similarity(a, b) >= 0.75
    assert name_similarity(a, analyse_name("sd_xl_base_1.0.safetensors")) < 0.2


@given(st.text(max_size=120))
def test_any_name_is_analysed_without_error(name):
    n = analyse_name(name)
    assert n.basename == name.replace("\\", "/").rsplit("/", 1)[-1]
    assert all(len(q) >= 3 for q in search_queries(n))
