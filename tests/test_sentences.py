"""Sentence classification with a text CNN: file formats, vocabulary, word vectors, and
end-to-end training on a tiny corpus and vectors file made here (nothing downloads)."""
import copy

import numpy as np
import pytest
import torch

from conftest import model
from dendrisim.errors import DataError
from dendrisim.tasks.sentences import SentenceClassification, SentenceOptions, read_labelled, tokenize
from dendrisim.training import RunOptions, Trainer

POS, NEG = ["good", "great", "fine", "nice", "lovely"], ["bad", "awful", "poor", "sad", "dull"]
FILLER = ["the", "film", "was", "a", "plot", "it", "really", "quite", "story", "acting", "and", "of"]


def corpus(n, seed):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        words = list(rng.choice(FILLER, int(rng.integers(3, 9))))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(POS if label else NEG)))
        out.append((label, " ".join(words)))
    return out


def write(path, rows, fmt):
    if fmt == "tsv":
        text = "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for y, s in rows)
    elif fmt == "fasttext":
        text = "".join(f"__label__{y} {s}\n" for y, s in rows)
    else:
        text = "".join(f"{y} {s}\n" for y, s in rows)
    path.write_text(text)
    return path


def vectors_file(path, dim=6, header=False, skip=("dull",)):
    """Sentiment words lie along +/- the first axis; 'dull' has no vector (an unknown word)."""
    rng = np.random.default_rng(1)
    lines = []
    for w in POS + NEG + FILLER + [",", "."]:
        if w in skip:
            continue
        v = rng.normal(0, 0.3, dim)
        v[0] = 1.0 if w in POS else -1.0 if w in NEG else 0.0
        lines.append(w + " " + " ".join(f"{x:.5f}" for x in v))
    path.write_text((f"{len(lines)} {dim}\n" if header else "") + "\n".join(lines) + "\n")
    return path


TEXTCNN = {
    "name": "tiny_textcnn",
    "task": {"type": "sentences", "batch_size": 16, "max_length": 12, "validation_fraction": 0.1},
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "emb": {"activation": "linear"},
        "c2": {"channels": 4, "activation": "relu"},
        "c3": {"channels": 4, "activation": "relu"},
        "p2": {"activation": "linear"},
        "p3": {"activation": "linear"},
        "out": {"size": "auto", "activation": "softmax"},
    },
    "projections": [
        {"from": "input", "to": "emb", "connectivity": "embedding"},
        {"from": "emb", "to": "c2", "connectivity": "conv2d", "kernel": [2, 6]},
        {"from": "emb", "to": "c3", "connectivity": "conv2d", "kernel": [3, 6]},
        {"from": "c2", "to": "p2", "connectivity": "maxpool", "kernel": "global"},
        {"from": "c3", "to": "p3", "connectivity": "maxpool", "kernel": "global"},
        {"from": "p2", "to": "out"},
        {"from": "p3", "to": "out"},
    ],
    "plasticity": {"rule": "dll"},
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 6, "seed": 0},
    "recording": {"enabled": False},
}


@pytest.fixture
def files(tmp_path):
    return {"train": write(tmp_path / "train.txt", corpus(400, 0), "kim"),
            "test": write(tmp_path / "test.tsv", corpus(100, 1), "tsv"),
            "vectors": vectors_file(tmp_path / "glove.6d.txt")}


def textcnn(files, *overrides):
    return model([f"task.train_file={files['train']}", f"task.test_file={files['test']}",
                  f"task.vectors={files['vectors']}", *overrides], base=copy.deepcopy(TEXTCNN))


def test_the_three_formats_read_the_same(tmp_path):
    rows = corpus(20, 3)
    got = [read_labelled(write(tmp_path / f"f.{fmt}", rows, fmt)) for fmt in ("tsv", "fasttext", "kim")]
    assert [g[2] for g in got] == ["glue tsv", "fasttext", "label sentence"]
    for sentences, labels, _ in got:
        assert sentences == [s for _, s in rows] and labels == [str(y) for y, _ in rows]


def test_tokenizer_splits_punctuation_and_clitics():
    assert tokenize("It wasn't THE film's best, was it?") == ["it", "was", "n't", "the", "film", "'s", "best", ",",
                                                             "was", "it", "?"]


def test_vocabulary_padding_and_unknown_words(files, tmp_path):
    opts = SentenceOptions(type="sentences", train_file=str(files["train"]), test_file=str(files["test"]),
                           vectors=str(files["vectors"]), max_length=5, validation_fraction=0)
    task = SentenceClassification(opts, device=torch.device("cpu"))
    assert task.words[:2] == ["<pad>", "<unk>"] and task.classes == ["0", "1"]
    assert task.vocabulary == (len(task.words), 6) and task.train.x.shape[1] == 5
    v = task.vectors
    assert torch.equal(v[0], torch.zeros(6)) and torch.equal(v[1], torch.zeros(6))
    dull = v[task.words.index("dull")]  # a training word without a vector: random, not zero
    assert dull.abs().sum() > 0 and dull.abs().max() <= np.sqrt(3) * 0.6
    assert task.vectors[task.words.index("good"), 0] == 1.0
    assert 0.9 < task.coverage < 1.0
    short = task._encode(["good film", "the film was a plot it really"], {w: i for i, w in enumerate(task.words)})
    assert short[0, 2:].tolist() == [0, 0, 0] and (short[1] > 1).all()  # padded / cut at max_length
    assert task._encode(["zebra good"], {w: i for i, w in enumerate(task.words)})[0, 0] == 1  # unseen word: <unk>
    zero = SentenceClassification(SentenceOptions(**{**opts.__dict__, "unknown": "zero"}), device=torch.device("cpu"))
    assert torch.equal(zero.vectors[zero.words.index("dull")], torch.zeros(6))


def test_word2vec_text_header_gives_the_same_vectors(files, tmp_path):
    w2v = vectors_file(tmp_path / "w2v.txt", header=True)
    a = SentenceClassification(SentenceOptions(type="sentences", train_file=str(files["train"]),
                                               vectors=str(files["vectors"])), device=torch.device("cpu"))
    b = SentenceClassification(SentenceOptions(type="sentences", train_file=str(files["train"]), vectors=str(w2v)),
                               device=torch.device("cpu"))
    torch.testing.assert_close(a.vectors, b.vectors)
    assert len(a.test) == 40  # no test_file: a seeded tenth of the 400 training sentences


@pytest.mark.parametrize("rule", ["dll", "bp", "fa"])
def test_text_cnn_learns_the_tiny_task_end_to_end(files, tmp_path, rule):
    tr = Trainer(textcnn(files, f"plasticity.rule={rule}"), RunOptions(progress=False, log=lambda s: None,
                                                                        out_dir=tmp_path / "run"))
    frozen = tr.network.projections["input->emb"].weight.detach().clone()
    summary = tr.run()
    assert summary["test_accuracy"] > 0.9, summary
    assert torch.equal(tr.network.projections["input->emb"].weight, frozen)  # frozen by default
    assert "emb" not in tr.network.needs_error  # so no error is carried back into it


def test_bp_equals_autograd_on_a_text_cnn_with_a_learnable_embedding(files):
    exp = textcnn(files, "plasticity.rule=bp", "projections.0.learnable=true")
    task = SentenceClassification(exp.task, device=torch.device("cpu"))
    from dendrisim.builder import DataSpec, build_network
    from dendrisim.plasticity import build_rule
    from test_equivalence import autograd_grads, rule_grads

    net = build_network(exp, DataSpec.of(task))
    with torch.no_grad():
        net.projections["input->emb"].weight.copy_(task.vectors)
    net, rule = net.double(), build_rule(net, exp).double()
    x, y = task.train.x[:9], task.train.y[:9]
    t = torch.eye(2, dtype=torch.float64)[y]
    expected, got = autograd_grads(net, x, t), rule_grads(net, rule, x, t)
    assert "projections.input->emb.weight" in got
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)
    unused = sorted(set(range(task.vocabulary[0])) - set(x.flatten().tolist()))
    assert got["projections.input->emb.weight"][unused].abs().sum() == 0  # only the tokens present change


def test_missing_files_say_what_is_expected_where(files, tmp_path):
    with pytest.raises(DataError, match=r"task.vectors: .*nothere.txt not found; expected word vectors .* Nothing is downloaded"):
        Trainer(textcnn(files, f"task.vectors={tmp_path / 'nothere.txt'}"), RunOptions(progress=False))
    with pytest.raises(DataError, match=r"task.train_file is not set; give the file in the model or with --set"):
        Trainer(model([f"task.vectors={files['vectors']}"], base=copy.deepcopy(TEXTCNN)), RunOptions(progress=False))
    bad = tmp_path / "bad.txt"
    bad.write_text("__label__1 good film\n2 bad film\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected '__label__X sentence' like the first line"):
        read_labelled(bad)
    for text in ("", "\n \n"):
        (tmp_path / "empty.txt").write_text(text)
        with pytest.raises(DataError, match=r"empty.txt: no sentences in the file"):
            read_labelled(tmp_path / "empty.txt")
    (tmp_path / "three.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t2\t3\n")
    with pytest.raises(DataError, match=r"three.tsv:3: 3 tab-separated columns, the header has 2"):
        read_labelled(tmp_path / "three.tsv")
    (tmp_path / "unseen.txt").write_text("0 bad\n5 good\n")
    with pytest.raises(DataError, match=r"unseen.txt: labels \['5'\] do not occur in"):
        Trainer(textcnn(files, f"task.test_file={tmp_path / 'unseen.txt'}"), RunOptions(progress=False))


def test_check_describes_the_text_cnn_without_loading_the_vectors(files):
    from dendrisim.inspect import describe

    text = describe(textcnn(files))
    assert "population emb" in text and "shape=[1, 12, 6]" in text and "shape=[4, 1, 1]" in text
    assert "input->emb" in text and "(frozen)" in text


@pytest.mark.parametrize("name", ["subj", "sst2"])
def test_shipped_text_cnn_models_run_on_a_tiny_corpus(tmp_path, name):
    """The model files as shipped (300-d vectors, widths 3/4/5), pointed at files made here."""
    from dendrisim.builder import load_experiment
    from dendrisim.inspect import describe

    train = write(tmp_path / "train.tsv", corpus(120, 4), "tsv")
    test = write(tmp_path / "test.txt", corpus(30, 5), "fasttext")
    vectors = vectors_file(tmp_path / "vec.txt", dim=300)
    sets = [f"task.train_file={train}", f"task.vectors={vectors}", "training.max_steps_per_epoch=2",
            "training.epochs=1", "recording.enabled=false"]
    if name == "sst2":
        sets.append(f"task.test_file={test}")
    exp = load_experiment(f"models/dll_textcnn_{name}.yaml", sets)
    text = describe(exp)
    assert "shape=[1, 64, 300]" in text or "shape=[1, 56, 300]" in text
    assert "c3.apical <- p3.error through maxpool unpooling" in text
    assert "emb.apical" not in text  # the embedding is frozen: no error is carried into it
    summary = Trainer(exp, RunOptions(progress=False, log=lambda s: None, out_dir=tmp_path / "run")).run()
    assert 0.0 <= summary["test_accuracy"] <= 1.0
