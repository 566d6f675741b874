import json

from emrestore import cli, ops


def test_info_prints_build_info(capsys):
    assert cli.main(["info"]) == 0
    assert json.loads(capsys.readouterr().out) == ops.build_info()


def test_bench_quick_prints_table(capsys):
    assert cli.main(["bench", "--quick", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 1x1x256x256 K=25 | forward |" in out
    assert "| 1x1x256x256 K=25 | forward+backward |" in out
