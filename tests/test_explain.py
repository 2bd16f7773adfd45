"""``rankref.explain`` and ``rankref explain``: the tables are the definitions computed plainly,
they agree with rankref's losses, the worked example of the docs holds exactly, and every user
mistake on the command line is one line naming the option (exit status 2)."""
import argparse
import pathlib
import re
import shlex
import warnings
from fractions import Fraction

import numpy as np
import pytest

import rankref
from rankref import explain as ex_mod
from rankref.explain import MAX_ENTRIES, explain

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "worked_example.rst"

# the worked example of the docs: 3 positives and 5 negatives, by decreasing logit
X = [2.1, 1.8, 1.2, 0.9, 0.6, 0.3, -0.4, -1.5]
T_RS = [0, 0.5, 0.9, 0, 0, 0.7, 0, 0]
T_AP = [0, 1, 1, 0, 0, 1, 0, 0]
DELTAS = (0.0, 1e-3, 0.25, 0.5, 1.0, 3.0)


def _frac(values):
    """Floats as the small fractions they round (exact: each is checked to round back)."""
    out = []
    for v in np.asarray(values, dtype=np.float64).ravel():
        f = Fraction(float(v)).limit_denominator(10_000)
        assert abs(float(f) - v) <= 1e-15 * max(1.0, abs(v)), v
        out.append(f)
    return out


F = Fraction


# ----------------------------------------------------------------------------------------------
# the worked example, exactly (the numbers of docs/worked_example.rst)


def test_worked_example_rs_delta0_exact():
    ex = explain("rs", X, T_RS, delta=0.0)
    q = ex.per_positive
    assert list(ex.positives) == [1, 2, 5]
    assert _frac(q["rank+"]) == [1, 2, 3]
    assert _frac(q["FP"]) == [1, 1, 3]
    assert _frac(q["rank"]) == [2, 3, 6]
    assert _frac(q["RE"]) == [F(1, 2), F(1, 3), F(1, 2)]
    assert _frac(q["c"]) == [F(1, 6), F(1, 9), F(1, 18)]
    assert _frac(q["cur"]) == [F(1, 2), F(3, 10), F(3, 10)]
    assert _frac(q["tgt"]) == [F(1, 2), F(1, 10), F(1, 5)]
    assert _frac(q["SE"]) == [0, F(1, 5), F(1, 10)]
    assert _frac(q["D"]) == [0, 1, 1]
    assert _frac(ex.updates["ranking"]) == [F(1, 3), -F(1, 6), -F(1, 9), F(1, 18), F(1, 18),
                                            -F(1, 6), 0, 0]
    assert _frac(ex.updates["sorting"]) == [0, F(1, 10), -F(1, 15), 0, 0, -F(1, 30), 0, 0]
    assert _frac(ex.updates["total"]) == [F(1, 3), -F(1, 15), -F(8, 45), F(1, 18), F(1, 18),
                                          -F(1, 5), 0, 0]
    assert _frac([ex.values["ranking_loss"], ex.values["sorting_loss"]]) == [F(4, 9), F(1, 10)]
    res = rankref.rank_sort_loss(X, T_RS, delta=0.0)
    np.testing.assert_allclose(res.grad, [float(v) for v in _frac(ex.updates["total"])],
                               rtol=1e-14, atol=1e-16)
    assert ex.agrees


def test_worked_example_ap_delta0_exact():
    ex = explain("ap", X, T_AP, delta=0.0)
    q = ex.per_positive
    assert list(ex.positives) == [5, 2, 1]  # by ascending logit: the interpolation's order
    assert _frac(q["rank+"]) == [3, 2, 1]
    assert _frac(q["FP"]) == [3, 1, 1]
    assert _frac(q["rank"]) == [6, 3, 2]
    assert _frac(q["prec"]) == [F(1, 2), F(2, 3), F(1, 2)]
    assert _frac(q["m"]) == [F(1, 2), F(2, 3), F(2, 3)]
    assert _frac(q["c"]) == [F(1, 18), F(1, 9), F(1, 9)]
    assert _frac(ex.updates["update"]) == [F(5, 18), -F(1, 9), -F(1, 9), F(1, 18), F(1, 18),
                                           -F(1, 6), 0, 0]
    assert _frac([ex.values["loss"]]) == [F(7, 18)]
    plain = explain("ap", X, T_AP, delta=0.0, interpolate=False)
    assert _frac([plain.values["loss"]]) == [F(4, 9)]
    np.testing.assert_allclose(plain.values["loss"], 1 - rankref.average_precision(X, T_AP),
                               rtol=1e-14)
    assert ex.agrees and plain.agrees


def _literal_block_after(marker):
    """The literal block that follows the line ``marker`` in the worked example page."""
    lines = DOCS.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == marker)
    i = start + 1
    while not lines[i].startswith("   "):  # the directive's own blank line
        i += 1
    block = []
    while i < len(lines) and (lines[i].startswith("   ") or not lines[i].strip()):
        block.append(lines[i][3:])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    return block


WE_LOGITS = "--logits=2.1,1.8,1.2,0.9,0.6,0.3,-0.4,-1.5"


@pytest.mark.parametrize("argv", [
    ["--loss", "rs", "--delta", "0", WE_LOGITS, "--targets", "0,0.5,0.9,0,0,0.7,0,0"],
    ["--loss", "ap", "--delta", "0", WE_LOGITS, "--targets", "0,1,1,0,0,1,0,0"],
    ["--loss", "rs", WE_LOGITS, "--targets", "0,0.5,0.9,0,0,0.7,0,0"],
])
def test_docs_show_the_command_output(argv, capsys):
    """The console blocks of the worked example are the command's exact output."""
    if not DOCS.exists():
        pytest.skip("docs/worked_example.rst is not in this checkout")
    block = _literal_block_after(".. explain-output: " + " ".join(argv))
    command = []
    while block[0].endswith("\\"):  # a command continued on the next line
        command.append(block.pop(0)[:-1])
    command.append(block.pop(0))
    assert shlex.split(" ".join(command)) == ["$", "rankref", "explain"] + argv
    assert _run(argv) == 0
    assert block == capsys.readouterr().out.rstrip("\n").splitlines()


# ----------------------------------------------------------------------------------------------
# agreement with rankref on random inputs with ties, at several deltas


def _random_case(rng, n, ties, ignored=True):
    x = rng.normal(0, 1.5, n)
    if ties:
        x = np.round(x * 2) / 2  # many exact ties, at distances that are multiples of 1/2
    t = np.zeros(n)
    npos = rng.integers(1, n)
    pos = rng.choice(n, npos, replace=False)
    t[pos] = np.round(rng.uniform(0.05, 1.0, npos), 1) if ties else rng.uniform(0.05, 1, npos)
    if ignored and n > 3:
        t[rng.choice(np.flatnonzero(t == 0), min(1, int((t == 0).sum())), replace=False)] = -1
    return x, t


def _assert_close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("ties", [False, True])
def test_rs_agrees_with_rank_sort_loss(delta, ties):
    rng = np.random.default_rng(int(delta * 1000) + ties)
    for _ in range(15):
        x, t = _random_case(rng, int(rng.integers(2, 14)), ties)
        if not (t > 0).any():
            continue
        ex = explain("rs", x, t, delta=delta)
        for method in ("bucketed", "dense"):
            res = rankref.rank_sort_loss(x, t, delta, method)
            _assert_close(ex.values["ranking_loss"], res.ranking_loss)
            _assert_close(ex.values["sorting_loss"], res.sorting_loss)
            _assert_close(ex.updates["ranking"], res.ranking_grad)
            _assert_close(ex.updates["sorting"], res.sorting_grad)
            _assert_close(ex.updates["total"], res.grad)
        rr = rankref.relaxed_ranks(x, t, delta)
        order = np.argsort(ex.positives)  # relaxed_ranks lists positives by index
        np.testing.assert_array_equal(ex.positives[order], rr.pos_index)
        _assert_close(ex.per_positive["rank+"][order], rr.rank_pos)
        _assert_close(ex.per_positive["FP"][order], rr.fp)
        _assert_close(ex.per_positive["rank"][order], rr.rank)
        assert ex.agrees
        assert abs(ex.updates["total"].sum()) < 1e-12  # the updates sum to zero


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("interpolate", [True, False])
def test_ap_agrees_with_ap_loss(delta, ties, interpolate):
    rng = np.random.default_rng(int(delta * 1000) + 2 * ties + interpolate)
    for _ in range(15):
        x, t = _random_case(rng, int(rng.integers(2, 14)), ties)
        t = np.where(t > 0, 1.0, t)
        ex = explain("ap", x, t, delta=delta, interpolate=interpolate)
        for method in ("bucketed", "dense"):
            res = rankref.ap_loss(x, t, delta, interpolate, method)
            _assert_close(ex.values["loss"], res.loss)
            _assert_close(ex.updates["update"], res.grad)
        assert ex.agrees
        assert abs(ex.updates["update"].sum()) < 1e-12


@pytest.mark.parametrize("delta", DELTAS)
@pytest.mark.parametrize("ties", [False, True])
def test_gap_agrees_with_gap_loss(delta, ties):
    rng = np.random.default_rng(int(delta * 1000) + ties + 7)
    for _ in range(12):
        n, C = int(rng.integers(1, 7)), int(rng.integers(1, 5))
        s = rng.normal(0, 1.5, (n, C))
        if ties:
            s = np.round(s * 2) / 2
        y = rng.integers(-1, C + 1, n)
        if not ((y >= 0) & (y < C)).any():
            y[0] = int(rng.integers(0, C))
        counts = rng.integers(0, 20, C).astype(float)
        gamma = float(rng.choice([0.0, 0.5, 1.0]))
        for cnt in (None, counts):
            ex = explain("gap", s, y, delta=delta, gamma=gamma, counts=cnt)
            ref_counts = rankref.ClassCounts(C).update(y) if cnt is None else cnt
            for method in ("bucketed", "dense"):
                res = rankref.gap_loss(s, y, ref_counts, delta, gamma, method)
                _assert_close(ex.values["loss"], res.loss)
                _assert_close(ex.values["ranking_error"], res.ranking_error)
                _assert_close(ex.updates["update"], res.grad)
            _assert_close(ex.options["omega"], res.weights)
            assert ex.agrees


@pytest.mark.parametrize("delta", [0.0, 5e-324, 1e-300, 0.5, 1e300, 1.7e308])
def test_extreme_ranges_agree_without_warnings(delta):
    x = [1e308, -1e308, 0.0, 1e-300, -1e-300, 3.0]
    t = [0.9, 0.0, 0.6, 0.0, 0.3, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for loss, targets in (("rs", t), ("ap", [1.0 if v > 0 else v for v in t])):
            ex = explain(loss, x, targets, delta=delta)
            assert ex.agrees, (loss, ex.values, ex.library)
            str(ex)
        ex = explain("gap", np.reshape(x, (3, 2)), [0, 1, 2], delta=delta)
        assert ex.agrees
        str(ex)


def test_ties_at_delta0_count_above():
    # a negative tied with the positive counts as ranked above it (H_0(0) = 1)
    ex = explain("rs", [1.0, 1.0, 0.0], [0.8, 0.0, 0.0], delta=0.0)
    assert ex.per_positive["FP"][0] == 1 and ex.per_positive["rank+"][0] == 1
    assert ex.updates["total"][1] == pytest.approx(0.5) and ex.updates["total"][2] == 0
    half = explain("rs", [1.0, 1.0, 0.0], [0.8, 0.0, 0.0], delta=0.5)
    assert half.per_positive["FP"][0] == 0.5 and half.per_positive["rank+"][0] == 0.5


def test_matrix_input_and_ignored_entries():
    x = np.array([[2.0, 1.0], [0.5, 0.0]])
    t = np.array([[0.9, -1.0], [0.7, 0.0]])
    ex = explain("rs", x, t)
    assert ex.updates["total"].shape == (2, 2) and ex.updates["total"][0, 1] == 0
    assert np.isnan(ex.step[1]).all()  # the ignored entry is compared with nothing
    assert "(0, 1)" in str(ex) and "ign" in str(ex)
    _assert_close(ex.updates["total"], rankref.rank_sort_loss(x, t).grad)


def test_gap_other_class_positives_are_not_compared():
    ex = explain("gap", [[2.0, -1.0], [0.3, 1.2]], [0, 1])
    # positive (0, 0) of class 0 is not compared with positive (1, 1) of class 1
    assert np.isnan(ex.step[3, 0]) and np.isnan(ex.step[0, 1])
    assert "-" in str(ex).split("Every positive")[0]


def test_table_text():
    text = str(explain("rs", [2.0, 1.0, 0.5, 0.0], [0.9, 0.0, 0.7, 0.0]))
    for word in ("rank+(i)", "FP(i)", "rank(i)", "RE(i)", "SE(i)", "D(i)", "cur(i)", "tgt(i)",
                 "ranking loss = mean RE(i) = 0.2", "gives the same values and updates"):
        assert word in text
    assert all(line == line.rstrip() for line in text.splitlines())
    text = str(explain("gap", [[2.0, -1.0, 0.5], [0.3, 0.1, 1.2]], [0, 3]))
    assert "omega = [" in text and "L_gap" in text
    big = explain("rs", np.arange(12.0), np.r_[np.full(11, 0.5), 0.0])
    assert "is left out: 11 positives" in str(big)


# ----------------------------------------------------------------------------------------------
# errors of the Python API


@pytest.mark.parametrize("call, match", [
    (lambda: explain("xx", [1.0], [1.0]), "loss must be"),
    (lambda: explain("rs", np.zeros(MAX_ENTRIES + 1), np.ones(MAX_ENTRIES + 1)), "at most 50"),
    (lambda: explain("rs", [1.0, 2.0], [0.0, 0.0]), "no positive"),
    (lambda: explain("ap", [1.0, 2.0], [0.5, 0.0]), "targets for ap_loss"),
    (lambda: explain("rs", [1.0, np.nan], [1.0, 0.0]), "logits"),
    (lambda: explain("rs", [1.0, 2.0], [1.0]), "targets has shape"),
    (lambda: explain("rs", [1.0, 2.0], [1.0, 0.0], delta=-1.0), "delta"),
    (lambda: explain("rs", [1.0, 2.0], [1.0, 0.0], delta=np.inf), "delta"),
    (lambda: explain("rs", [1.0, 2.0], [1.0, 0.0], counts=[1.0]), "counts is for"),
    (lambda: explain("ap", [1.0, 2.0], [1.0, 0.0], interpolate="yes"), "interpolate"),
    (lambda: explain("gap", [1.0, 2.0], [0]), "2-D"),
    (lambda: explain("gap", np.zeros((26, 2)), np.zeros(26, dtype=int)), "at most 50"),
    (lambda: explain("gap", [[1.0, 2.0]], [2]), "no foreground"),
    (lambda: explain("gap", [[1.0, 2.0]], [0], counts=[1.0]), "counts"),
    (lambda: explain("gap", [[1.0, 2.0]], [0], counts=[1.0, -1.0]), "counts"),
    (lambda: explain("gap", [[1.0, 2.0]], [0], gamma=-1.0), "gamma"),
])
def test_api_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------------------------------------
# the command line


def _parser():
    parser = argparse.ArgumentParser(prog="rankref")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ex_mod.add_parser(sub)
    return parser


def _run(argv):
    return ex_mod.run(_parser().parse_args(["explain"] + list(argv)))


@pytest.mark.parametrize("argv, expected", [
    (["--loss", "rs", "--logits", "2,1,0.5,0", "--targets", "0.9,0,0.7,0"],
     lambda: explain("rs", [2, 1, 0.5, 0], [0.9, 0, 0.7, 0])),
    (["--loss", "rs", "--logits", "2,1,0.5,0", "--targets", "0.9,0,0.7,0", "--delta", "0.3"],
     lambda: explain("rs", [2, 1, 0.5, 0], [0.9, 0, 0.7, 0], 0.3)),
    (["--loss", "ap", "--logits=-1,2,0.5,0", "--targets", "1,0,1,-1", "--no-interpolate"],
     lambda: explain("ap", [-1, 2, 0.5, 0], [1, 0, 1, -1], interpolate=False)),
    (["--loss", "gap", "--scores", "2,-1,0.5/0.3,0.1,1.2/0.8,-0.5,0", "--labels", "0,2,3"],
     lambda: explain("gap", [[2, -1, 0.5], [0.3, 0.1, 1.2], [0.8, -0.5, 0]], [0, 2, 3])),
    (["--loss", "gap", "--scores", "2 -1/0.3 1.2", "--labels", "0,-1", "--counts", "5,1",
      "--gamma", "0.5", "--delta", "0"],
     lambda: explain("gap", [[2, -1], [0.3, 1.2]], [0, -1], 0.0, gamma=0.5, counts=[5, 1])),
])
def test_cli_prints_the_table(argv, expected, capsys):
    assert _run(argv) == 0
    out = capsys.readouterr().out
    assert out == str(expected()) + "\n"
    assert "gives the same values and updates" in out


MANY = ",".join(["1"] * (MAX_ENTRIES + 1))


@pytest.mark.parametrize("argv, option", [
    (["--loss", "rs", "--logits", "2,1,nan", "--targets", "1,0,0"], "--logits"),
    (["--loss", "rs", "--logits", "2,1,inf", "--targets", "1,0,0"], "--logits"),
    (["--loss", "rs", "--logits", "2,1,1e400", "--targets", "1,0,0"], "--logits"),
    (["--loss", "rs", "--logits", "2,x", "--targets", "1,0"], "--logits"),
    (["--loss", "rs", "--logits", ",", "--targets", "1"], "--logits"),
    (["--loss", "rs", "--logits", MANY, "--targets", "1"], "--logits"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0,0"], "--targets"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "0,0"], "--targets"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1.5,0"], "--targets"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "nan,0"], "--targets"),
    (["--loss", "ap", "--logits", "2,1", "--targets", "0.5,0"], "--targets"),
    (["--loss", "ap", "--logits", "2,1", "--targets", "-1,0"], "--targets"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0", "--delta", "-1"], "--delta"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0", "--delta", "nan"], "--delta"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0", "--delta", "inf"], "--delta"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0", "--delta", "x"], "--delta"),
    (["--loss", "rs", "--logits", "2,1"], "--targets"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0", "--no-interpolate"],
     "--no-interpolate"),
    (["--loss", "rs", "--logits", "2,1", "--targets", "1,0", "--labels", "0"], "--labels"),
    (["--loss", "xx", "--logits", "2,1", "--targets", "1,0"], "--loss"),
    (["--logits", "2,1", "--targets", "1,0"], "--loss"),
    (["--loss", "gap", "--logits", "1,2", "--labels", "0"], "--logits"),
    (["--loss", "gap", "--scores", "1,2/3,4"], "--labels"),
    (["--loss", "gap", "--scores", "1,2/3", "--labels", "0,1"], "--scores"),
    (["--loss", "gap", "--scores", "1,2//", "--labels", "0,1"], "--scores"),
    (["--loss", "gap", "--scores", "1,nan/3,4", "--labels", "0,1"], "--scores"),
    (["--loss", "gap", "--scores", "/".join(["1,2,3,4,5"] * 11), "--labels", "0"], "--scores"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0"], "--labels"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,5"], "--labels"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,-2"], "--labels"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "2,2"], "--labels"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0.5,2"], "--labels"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,1", "--counts", "1"], "--counts"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,1", "--counts", "1,-1"],
     "--counts"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,1", "--gamma", "-1"], "--gamma"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,1", "--gamma", "inf"], "--gamma"),
    (["--loss", "gap", "--scores", "1,2/3,4", "--labels", "0,1", "--no-interpolate"],
     "--no-interpolate"),
])
def test_cli_mistakes_are_one_line(argv, option, capsys):
    with pytest.raises(SystemExit) as exc:
        _run(argv)
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err
    assert err[0].startswith("usage: rankref explain")
    last = err[-1]
    assert last.startswith("rankref explain: error: ")
    assert option in last, last


def test_cli_help_documents_the_forms(capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["explain", "--help"])
    assert exc.value.code == 0
    out = re.sub(r"\s+", " ", capsys.readouterr().out)
    for text in ("--scores", "rows separated by '/'", "--labels", "-1 ignored", "--logits=-1,2",
                 f"at most {MAX_ENTRIES} entries", "0.5 for rs and gap, 1 for ap"):
        assert text in out, text


def test_wired_into_rankref_cli(capsys):
    from rankref import cli

    if "explain" not in open(cli.__file__).read():
        pytest.skip("rankref.cli does not dispatch 'explain' yet")
    assert cli.main(["explain", "--loss", "rs", "--logits", "2,1,0.5,0",
                     "--targets", "0.9,0,0.7,0"]) == 0
    assert capsys.readouterr().out == str(explain("rs", [2, 1, 0.5, 0], [0.9, 0, 0.7, 0])) + "\n"
    with pytest.raises(SystemExit) as exc:
        cli.main(["explain", "--loss", "rs", "--logits", "2,1", "--targets", "0,0"])
    assert exc.value.code == 2
    assert "--targets" in capsys.readouterr().err.strip().splitlines()[-1]
