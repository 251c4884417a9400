"""Model card co2_eq_emissions updates: only that key's lines change, everything else stays byte for byte."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from wattprint.pipeline.errors import InputError
from wattprint.pipeline.report import modelcard
from wattprint.pipeline.report.modelcard import ModelCardError, UpdateResult, co2_block, update_file, update_text

CARDS = Path(__file__).resolve().parent / "fixtures" / "modelcards"

BLOCK = co2_block(123456.789, "wattprint (measured GPU energy x hourly grid intensity)", "fine-tuning",
                  "europe-north1 (Hamina, Finland)", "8 x NVIDIA H100 80GB HBM3")
EXPECTED_BLOCK = (
    "co2_eq_emissions:\n"
    "  emissions: 123456.79\n"
    "  source: wattprint (measured GPU energy x hourly grid intensity)\n"
    "  training_type: fine-tuning\n"
    "  geographical_location: europe-north1 (Hamina, Finland)\n"
    "  hardware_used: 8 x NVIDIA H100 80GB HBM3\n"
)


def card(tmp_path: Path, name: str, *, crlf: bool = False) -> Path:
    """A copy of a fixture card in tmp_path (crlf=True: guaranteed CRLF whatever git did on checkout)."""
    data = (CARDS / name).read_bytes()
    if crlf:
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    p = tmp_path / name
    p.write_bytes(data)
    return p


def front_matter(text: str) -> tuple[str, str]:
    """(front matter YAML, body after the closing fence line) of an LF or CRLF card."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines(keepends=True)
    assert lines[0].rstrip("\r\n") == "---"
    close = next(i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") == "---")
    return "".join(lines[1:close]), "".join(lines[close + 1:])


def loaded(text: str) -> dict[str, Any]:
    data = yaml.safe_load(front_matter(text)[0])
    assert isinstance(data, dict)
    return data


def fails(path: Path, co2: Any = None, **kw: Any) -> ModelCardError:
    """update_file must raise and leave the file's bytes and the directory listing as they were."""
    before = path.read_bytes() if path.is_file() else None
    listing = sorted(os.listdir(path.parent))
    with pytest.raises(ModelCardError) as exc:
        update_file(path, BLOCK if co2 is None else co2, **kw)
    if before is not None:
        assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == listing  # no temp file left behind
    assert isinstance(exc.value, InputError)
    return exc.value


# --------------------------------------------------------------------------- co2_block


def test_co2_block_keeps_the_hub_key_order_and_drops_none() -> None:
    b = co2_block(1234.5678, "wattprint", None, "Quebec, Canada", None, extra={"training_time_h": 12.5, "x": None})
    assert b == {"emissions": 1234.57, "source": "wattprint", "geographical_location": "Quebec, Canada",
                 "training_time_h": 12.5}
    assert list(b) == ["emissions", "source", "geographical_location", "training_time_h"]
    assert co2_block(0, "w", "pre-training", None, None) == {"emissions": 0.0, "source": "w",
                                                             "training_type": "pre-training"}
    assert math.copysign(1.0, co2_block(-0.0, "w", None, None, None)["emissions"]) == 1.0


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), float("-inf"), "12", True, None])
def test_co2_block_rejects_bad_emissions(bad: Any) -> None:
    with pytest.raises(InputError) as exc:
        co2_block(bad, "wattprint", None, None, None)
    assert exc.value.where == "co2_eq_emissions.emissions"


def test_co2_block_rejects_bad_fields() -> None:
    with pytest.raises(InputError, match="training type"):
        co2_block(1.0, "wattprint", "finetuning", None, None)
    with pytest.raises(InputError, match="empty"):
        co2_block(1.0, "  ", None, None, None)
    with pytest.raises(InputError, match="not a string"):
        co2_block(1.0, "wattprint", None, None, 8)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="standard field"):
        co2_block(1.0, "wattprint", None, None, None, extra={"emissions": 2.0})


# --------------------------------------------------------------------------- replace / append


def test_replaces_the_existing_block_and_nothing_else(tmp_path: Path) -> None:
    p = card(tmp_path, "idefics_style.md")
    old = p.read_text(encoding="utf-8")
    old_data = loaded(old)
    result = update_file(p, BLOCK)
    assert result == UpdateResult(created=False, added_front_matter=False, replaced=True)
    new = p.read_text(encoding="utf-8")
    # The exact expected text: the lines before the key, the new block, the closing fence and the body.
    start = old.index("co2_eq_emissions:\n")
    end = old.index("---\n", start)
    assert new == old[:start] + EXPECTED_BLOCK + old[end:]
    data = loaded(new)
    assert data["co2_eq_emissions"] == BLOCK
    assert data["co2_eq_emissions"]["emissions"] == 123456.79  # grams, as the Hub wants
    assert {k: v for k, v in data.items() if k != "co2_eq_emissions"} == \
        {k: v for k, v in old_data.items() if k != "co2_eq_emissions"}
    assert list(data) == list(old_data)  # key order kept
    assert front_matter(new)[1] == front_matter(old)[1]  # the body, including its own '---' rule


def test_replacing_twice_is_idempotent(tmp_path: Path) -> None:
    p = card(tmp_path, "idefics_style.md")
    update_file(p, BLOCK)
    once = p.read_bytes()
    mtime = p.stat().st_mtime_ns
    assert update_file(p, BLOCK).replaced
    assert p.read_bytes() == once
    assert p.stat().st_mtime_ns == mtime  # unchanged content is not rewritten
    assert update_text(once.decode(), BLOCK) == once.decode()


def test_a_second_update_replaces_the_first(tmp_path: Path) -> None:
    p = card(tmp_path, "no_co2.md")
    update_file(p, BLOCK)
    other = co2_block(5.0, "wattprint", "pre-training", None, None)
    assert update_file(p, other) == UpdateResult(created=False, added_front_matter=False, replaced=True)
    text = p.read_text(encoding="utf-8")
    assert text.count("co2_eq_emissions:") == 1 and loaded(text)["co2_eq_emissions"] == other


def test_appends_at_the_end_of_the_front_matter(tmp_path: Path) -> None:
    p = card(tmp_path, "no_co2.md")
    old = p.read_text(encoding="utf-8")
    assert update_file(p, BLOCK) == UpdateResult(created=False, added_front_matter=False, replaced=False)
    close = old.index("---\n", 4)
    assert p.read_text(encoding="utf-8") == old[:close] + EXPECTED_BLOCK + old[close:]


def test_crlf_card_with_comments_stays_crlf(tmp_path: Path) -> None:
    p = card(tmp_path, "commented_crlf.md", crlf=True)
    old = p.read_bytes()
    assert not old.endswith(b"\n")
    assert update_file(p, BLOCK).replaced
    new = p.read_bytes()
    assert b"\n" not in new.replace(b"\r\n", b"")  # every line ending is still CRLF
    assert not new.endswith(b"\n")  # no final newline added
    # The key line (with its comment) and its indented lines, including the indented comment, are replaced;
    # the blank line and the column-0 comment before model-index belong to what follows and stay.
    start = old.index(b"co2_eq_emissions:")
    end = old.index(b"\r\n\r\n# Optional.", start) + 2
    assert new == old[:start] + EXPECTED_BLOCK.replace("\n", "\r\n").encode() + old[end:]
    data = loaded(new.decode())
    assert data["co2_eq_emissions"] == BLOCK
    assert data["tags"] == ["speech", "automatic-speech-recognition"]
    assert data["model-index"][0]["results"][0]["metrics"][0]["value"] == 20.90


def test_bom_is_kept(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    body = "\n# Title\n"
    p.write_bytes(b"\xef\xbb\xbf---\nlicense: mit\n---\n" + body.encode())
    update_file(p, BLOCK)
    assert p.read_bytes() == b"\xef\xbb\xbf---\nlicense: mit\n" + EXPECTED_BLOCK.encode() + b"---\n" + body.encode()


def test_quoted_key_and_flow_value_are_replaced() -> None:
    text = '---\nlicense: mit\n"co2_eq_emissions": {emissions: 3, source: x}\ntags: [a]\n---\nbody\n'
    assert update_text(text, BLOCK) == "---\nlicense: mit\n" + EXPECTED_BLOCK + "tags: [a]\n---\nbody\n"


def test_hf_template_empty_mapping_is_replaced(tmp_path: Path) -> None:
    p = card(tmp_path, "hf_template_empty.md")
    old = p.read_text(encoding="utf-8")
    assert update_file(p, BLOCK) == UpdateResult(created=False, added_front_matter=False, replaced=False)
    assert p.read_text(encoding="utf-8") == old.replace("{}\n", EXPECTED_BLOCK, 1)


def test_empty_front_matter_gets_the_block() -> None:
    assert update_text("---\n---\nbody", BLOCK) == "---\n" + EXPECTED_BLOCK + "---\nbody"


def test_extra_keys_and_awkward_strings_round_trip() -> None:
    b = co2_block(1.0, "yes", "fine-tuning", "Brooklyn, NY: USA # rack 4", "'8' \"GPUs\"",
                  extra={"training_time": "00:31:54", "notes": ["a", "b"]})
    out = update_text("---\nlicense: mit\n---\n", b)
    assert loaded(out)["co2_eq_emissions"] == b
    assert loaded(out)["co2_eq_emissions"]["source"] == "yes"  # not the boolean true


# --------------------------------------------------------------------------- no front matter / new file


def test_card_without_front_matter_gets_one_on_top(tmp_path: Path) -> None:
    p = card(tmp_path, "no_front_matter.md")
    old = p.read_bytes()
    assert update_file(p, BLOCK) == UpdateResult(created=False, added_front_matter=True, replaced=False)
    new = p.read_bytes()
    assert new == b"---\n" + EXPECTED_BLOCK.encode() + b"---\n" + old
    assert loaded(new.decode()) == {"co2_eq_emissions": BLOCK}


def test_crlf_card_without_front_matter_gets_a_crlf_one() -> None:
    body = "# Title\r\n\r\ntext\r\n"
    assert update_text(body, BLOCK) == ("---\n" + EXPECTED_BLOCK + "---\n").replace("\n", "\r\n") + body


def test_missing_file_is_created(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    body = "\n# New model\n\nTrained with wattprint accounting.\n"
    assert update_file(p, BLOCK, body_if_new=body) == UpdateResult(created=True, added_front_matter=True,
                                                                   replaced=False)
    assert p.read_text(encoding="utf-8") == "---\n" + EXPECTED_BLOCK + "---\n" + body
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~_umask()


def test_file_mode_is_kept(tmp_path: Path) -> None:
    p = card(tmp_path, "idefics_style.md")
    p.chmod(0o640)
    update_file(p, BLOCK)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert [f for f in os.listdir(tmp_path)] == ["idefics_style.md"]


def test_symlink_target_is_updated(tmp_path: Path) -> None:
    real = card(tmp_path, "no_co2.md")
    link = tmp_path / "README.md"
    link.symlink_to(real.name)
    update_file(link, BLOCK)
    assert link.is_symlink()
    assert loaded(real.read_text(encoding="utf-8"))["co2_eq_emissions"] == BLOCK


# --------------------------------------------------------------------------- errors leave the file alone


def test_invalid_yaml_names_the_file_line(tmp_path: Path) -> None:
    p = card(tmp_path, "broken_yaml.md")
    err = fails(p)
    assert err.where == f"{p}:5"
    assert "not valid YAML" in err.problem and err.hint


def test_front_matter_that_is_a_list(tmp_path: Path) -> None:
    p = card(tmp_path, "list_front_matter.md")
    err = fails(p)
    assert "not a mapping" in err.problem and err.where == f"{p}:2"


def test_unclosed_front_matter(tmp_path: Path) -> None:
    p = card(tmp_path, "unclosed.md")
    err = fails(p)
    assert "no closing" in err.problem and err.where == f"{p}:1"


def test_front_matter_not_on_line_1_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_text("\n  \n---\nlicense: mit\n---\nbody\n")
    err = fails(p)
    assert "not on line 1" in err.problem and err.where == f"{p}:3"


def test_directory_and_missing_parent(tmp_path: Path) -> None:
    d = tmp_path / "card"
    d.mkdir()
    assert "directory" in fails(d).problem
    with pytest.raises(ModelCardError, match="does not exist"):
        update_file(tmp_path / "nowhere" / "README.md", BLOCK)
    assert not (tmp_path / "nowhere").exists()


def test_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_bytes("---\nlicense: mit\n---\nCafé\n".encode("latin-1"))
    assert "UTF-8" in fails(p).problem


@pytest.mark.parametrize("emissions", [-1.0, float("nan"), float("inf"), "100 g"])
def test_bad_emissions_in_a_raw_mapping(tmp_path: Path, emissions: Any) -> None:
    p = card(tmp_path, "idefics_style.md")
    fails(p, {"emissions": emissions, "source": "x"})
    fails(p, {"source": "x"})


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_text("---\nco2_eq_emissions:\n  emissions: 1\nlicense: mit\nco2_eq_emissions:\n  emissions: 2\n---\n")
    err = fails(p)
    assert "more than once" in err.problem and err.where == f"{p}:5"


def test_an_alias_into_the_old_block_is_caught_by_the_check(tmp_path: Path) -> None:
    # Replacing the block would remove the anchor another key uses: the re-parse check must refuse.
    p = tmp_path / "README.md"
    p.write_text("---\nco2_eq_emissions: &c\n  emissions: 1\n  source: x\nmirror: *c\n---\nbody\n")
    assert "not be valid YAML" in fails(p).problem


def test_a_flow_style_front_matter_is_refused_not_broken(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_text("---\n{license: mit,\n tags: [a]}\n---\nbody\n")
    fails(p)


def test_a_key_hidden_where_we_cannot_see_its_lines(tmp_path: Path) -> None:
    p = tmp_path / "README.md"
    p.write_text("---\n? co2_eq_emissions\n: {emissions: 1}\nlicense: mit\n---\n")
    assert "cannot tell" in fails(p).problem


def test_write_failure_leaves_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = card(tmp_path, "idefics_style.md")

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(modelcard.os, "replace", boom)
    assert "No space left" in fails(p).problem


def test_fixture_cards_are_what_the_tests_think() -> None:
    # Guard against a fixture edit that would make the tests above pass vacuously.
    assert "co2_eq_emissions" in loaded((CARDS / "idefics_style.md").read_text(encoding="utf-8"))
    assert "co2_eq_emissions" not in loaded((CARDS / "no_co2.md").read_text(encoding="utf-8"))
    assert not (CARDS / "no_front_matter.md").read_text(encoding="utf-8").startswith("---")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
