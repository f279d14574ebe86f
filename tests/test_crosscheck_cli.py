"""``xsim crosscheck``: one program, or generated ones, on the interpreter and each ISA."""
from __future__ import annotations

import json
from pathlib import Path

from xsim.cli import main
from xsim.conformance.datafile import read_data_file
from xsim.crosscheck import command, diff

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_an_object_agrees_on_every_isa(capsys, tmp_path) -> None:
    frame = tmp_path / "frame.bin"
    frame.write_bytes(bytes.fromhex("ffffffffffff0200000000010800") + bytes(50))
    assert main(["crosscheck", str(EXAMPLES / "nic" / "firewall.o"), "--data-in", str(frame),
                 "--maps-in", str(EXAMPLES / "nic" / "blocklist.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["agree"] and set(out["differences"]) == {"x86_64", "aarch64", "riscv64"}


def test_a_handed_over_run_goes_on_natively_on_every_isa(capsys, tmp_path) -> None:
    """Each of three runs hands its rest to the interpreter at a devmap_hash lookup, and
    each ISA's code takes the next run up again with the last run's r0."""
    frame, ports = tmp_path / "frame.bin", tmp_path / "ports.json"
    frame.write_bytes(bytes(61))
    ports.write_text('[{"map": "ports", "key": "01000000", "value": "05000000"}]')
    obj = Path(__file__).resolve().parent / "data" / "nic" / "python_lookup.o"
    assert main(["crosscheck", str(obj), "--data-in", str(frame), "--maps-in", str(ports),
                 "--repeat", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"]


def test_an_objects_program_on_raw_memory_keeps_its_maps(capsys, tmp_path) -> None:
    """--mem runs the object's program with its maps (and --maps-in), not its bare code."""
    import struct
    mem, ports = tmp_path / "mem.bin", tmp_path / "ports.json"
    mem.write_bytes(struct.pack("<II", 0, 61))
    ports.write_text('[{"map": "ports", "key": "01000000", "value": "05000000"}]')
    obj = Path(__file__).resolve().parent / "data" / "nic" / "python_lookup.o"
    facts = command.object_facts(str(obj), "carry", "interp", data_in=None, ctx_in=None,
                                 maps_in=[{"map": "ports", "key": "01000000",
                                           "value": "05000000"}],
                                 repeat=3, budget=None, memory=mem.read_bytes())
    assert facts["run"]["error"] is None and facts["run"]["r0"] == 0
    assert facts["run"]["helper_calls"] == {1: 9}
    assert main(["crosscheck", str(obj), "--mem", str(mem), "--maps-in", str(ports),
                 "--repeat", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"]


def test_raw_memory_run(capsys, bench_progs) -> None:
    assert main(["crosscheck", str(bench_progs / "pkt_parse.bpf.o"), "--mem",
                 str(bench_progs / "pkt_parse.mem"), "--isa", "aarch64"]) == 0
    assert "aarch64: agrees" in capsys.readouterr().out


def test_a_difference_is_reported() -> None:
    ref = {"run": {"r0": 1}, "data_out": b"\x00"}
    assert command.first_difference(ref, {"run": {"r0": 2}, "data_out": b"\x00"}) == \
        "run.r0: 1 != 2"
    assert command.first_difference(ref, dict(ref)) is None


def test_generated_programs_and_save(capsys, tmp_path, monkeypatch) -> None:
    """A campaign that finds a difference prints it minimized and, with --save, writes a
    .data file whose expected result is the interpreter's."""
    real = diff.run_cases

    def one_bad(seeds, tiers, budget):
        results = real(seeds, tiers, budget)
        results[0].difference = "planted"
        return results
    monkeypatch.setattr(diff, "run_cases", one_bad)
    monkeypatch.setattr(diff, "shrink_difference", lambda code, *a: (code, None))
    assert main(["crosscheck", "--gen", "3", "--seed", "7", "--isa", "x86_64", "--jobs", "1",
                 "--save", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "== seed 7" in out and "1 with differences" in out
    case = diff.case(7)
    saved = read_data_file(tmp_path / "seed7.data")
    assert saved.raw == case.code and saved.memory == case.memory
    ref = diff.run_tier(case.code, case.memory, "interp", case.budget)
    assert (saved.error is None) == (ref["error"] is None)
    if saved.error is None:
        assert saved.result == ref["r0"]


def test_generated_programs_agree(capsys) -> None:
    assert main(["crosscheck", "--gen", "12", "--seed", "3", "--jobs", "1"]) == 0
    assert "12 programs on x86_64, aarch64, riscv64: 0 with differences" in \
        capsys.readouterr().out


def test_a_per_cpu_run_on_another_cpu(capsys, tmp_path) -> None:
    """--cpus/--cpu as for xsim run: katran's per-CPU counter on CPU 2 of 3, on each ISA and
    on the kernel's image of it."""
    from xsim.nic.pcap import read_packets
    off = EXAMPLES / "offload"
    frame = tmp_path / "frame.bin"
    frame.write_bytes(next(iter(read_packets(off / "udp64.pcap"))).data)
    common = [str(off / "katran.o"), "--data-in", str(frame), "--maps-in",
              str(off / "katran.maps.json"), "--cpus", "3", "--cpu", "2"]
    assert main(["crosscheck", *common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["agree"]
    image = Path(__file__).parent / "data" / "kernel_images" / "katran.json"
    assert main(["crosscheck", "--native", str(image), *common]) == 0
    assert "agrees with the interpreter on 1 run" in capsys.readouterr().out


def test_a_cpu_out_of_range_is_refused(capsys) -> None:
    for cmd in (["run", str(EXAMPLES / "offload" / "drop.o")],
                ["crosscheck", str(EXAMPLES / "offload" / "drop.o")]):
        assert main([*cmd, "--cpus", "2", "--cpu", "2"]) == 2
        assert "cpu 2 is not one of the 2 CPUs" in capsys.readouterr().err
        assert main([*cmd, "--cpus", "0"]) == 2
        assert "at least 1" in capsys.readouterr().err
