"""Hidden Markov models: fastem's Baum-Welch against hmmlearn's from the same
start, on the cases of ``benchmarks/hmm_speed.py`` (tiny in smoke mode).

The assertion is the one the script makes before it reports a time: after
the same fixed number of iterations, fastem's log-likelihood equals
hmmlearn's (both implementations) to a relative 1e-6, so that the times
compare the same work.  No timing is asserted."""

import pytest

pytest.importorskip("hmmlearn")

import hmm_speed
from conftest import MODE

N_ITER = 3
FACTOR = {"smoke": 100, "quick": 10, "full": 1}[MODE]


def _case(name):
    case = hmm_speed.CASES[name]
    if MODE == "smoke":  # a few thousand frames: seconds, compiling included
        if case.n_seq > 1:
            return hmm_speed.replace(case, n_seq=min(case.n_seq, 5), length=200)
        return hmm_speed.replace(case, length=2_000)
    return hmm_speed.scaled(case, FACTOR)


@pytest.mark.parametrize("name", list(hmm_speed.CASES))
def test_same_loglik_as_hmmlearn(benchmark, name):
    case = _case(name)
    X, lengths, _ = hmm_speed.make_data(case)
    start = hmm_speed.starting_params(case, X)
    implementations = ["scaling"] if MODE == "smoke" else ["scaling", "log"]
    models = {f"hmmlearn-{impl}": hmm_speed.hmmlearn_model(case, start, N_ITER, impl).fit(
        X, lengths) for impl in implementations}
    benchmark.group = f"HMM Baum-Welch x{N_ITER} {case.describe()}"
    models["fastem"] = benchmark.pedantic(
        lambda: hmm_speed.fastem_model(case, start, N_ITER).fit(X, lengths),
        rounds=1, iterations=1, warmup_rounds=0)
    for model in models.values():
        assert model.monitor_.iter == N_ITER
    found = hmm_speed.compare(case, models, N_ITER, rtol=1e-6)
    for impl in implementations:
        assert found[f"hmmlearn-{impl}_rel"] <= 1e-6, (name, impl, found)
    assert found["loglik_ok"]
