#!/usr/bin/env python
"""Write notebooks/06_nlp_transfer.ipynb from the cells below (the lesson's source of truth for its structure).

    python data_scripts/make_lesson06.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CELLS: list[tuple[str, str, list[str]]] = []


def md(text: str) -> None:
    CELLS.append(("markdown", text.strip("\n"), []))


def code(text: str, tags: list[str] | None = None) -> None:
    CELLS.append(("code", text.strip("\n"), tags or []))


md("""
# 06 · Transfer learning in NLP: pretraining on unlabelled text, fine-tuning BERT, and why it is unstable

*Following the NLP half of the "fine-tuning" lecture of Stanford's practical machine learning course, step by step,
with two papers on fine-tuning BERT with little data (Zhang et al., ICLR 2021; Mosbach et al., ICLR 2021).*

**What you will learn**
- Why NLP pretrains **self-supervised**: labelled text is scarce, unlabelled text is plentiful, and the text itself
  gives pseudo-labels: predict the next word (a **language model**, GPT) or a hidden word (a **masked language
  model**, BERT: a cloze test that sees both sides).
- **Word embeddings** first (CBOW: the context predicts a word, so words that occur together get similar vectors),
  then **Transformers**: BERT (an encoder), GPT (a decoder), and which to choose for which task.
- **Fine-tuning BERT is like computer vision**: replace the last layer, train a few epochs with a small learning
  rate; the input is built per task, and there are three heads: **sentence** (the first token's output + a linear
  layer), **token** (every token's output + a linear layer) and **span** (a start and an end score per token).
- The **practical considerations**: fine-tuning on small data is unstable; the original BERT optimiser dropped
  Adam's **bias correction**; 3 epochs are often too few; **re-initialising the top layers** can help; the bottom
  layers can be **frozen**; and the modern form of "freeze most of the model", **LoRA**.
- **LogME** on text features: choosing a pretrained text model without fine-tuning it.

**Claims under test** (each judged by a declared rule over seeds and recorded for the claims ledger): pretraining
beats training from scratch with little data; a masked LM initialises a classifier better than a causal LM; the
three heads all profit from the same pretrained encoder; BERTAdam (no bias correction) makes fine-tuning unstable;
3 epochs are too few; re-initialising the top layers helps; freezing the bottom costs little; LoRA matches full
fine-tuning with a fraction of the trainable parameters; LogME ranks the text models as fine-tuning does; and
pretraining's features transfer only once the loss leaves its context-free plateau.

**The data: a text world.** With no network we use the kit's *text world*: a generated language of 10 topics whose
words are pseudo-words ("vabino", "sozina"); words of a topic occur in the same contexts. The zoo's tiny BERT and
GPT (2 layers, hidden size 128, about 0.5 M parameters) were pretrained on 20,000 unlabelled sentences of it, for
about a minute of CPU each; the target tasks' validation and test sentences use only words that **fine-tuning
never sees**, so only pretraining can explain success.

**How long it runs** (measured on 2026-11-30 on the kit's 2-core development machine, one torch thread, while
other jobs shared its cores): the default mode took **268 s of CPU time**, about 4.5 minutes on an idle core (13
minutes of wall-clock under that load); smoke mode (`SMOKE = True`) about 50 s of wall-clock. The summary cell
prints this run's own figures.
""")

code('''
SMOKE = False          # True: tiny budgets, a check that everything runs (not the lesson's numbers)
DEVICE = None          # None = best available (cuda > mps > cpu), or "cpu", "cuda", "mps"
DATA = "world"         # "world" (the offline text world), a GLUE task ("sst2", "rte", "mrpc"; needs a network and
                       # the datasets library), or your own "/path/data.csv" / ".jsonl" (text or sentence1/sentence2, label)
MODELS = "zoo"         # "zoo" (the kit's tiny BERT, GPT and CBOW), "hf" (distilbert-base-uncased), a Hugging Face
                       # name ("bert-base-uncased", "gpt2", ...) or a local folder saved with save_pretrained
SEEDS = tuple(range(10))   # instability is measured over at least 10 seeds (mean, std, failed runs)
N_PER_CLASS = 20       # labelled training sentences per topic (the small-data regime)
N_PAIRS = 100          # labelled training pairs per label for the sentence-pair task
LRS = (3e-4, 1e-3, 3e-3)   # learning rates compared (chosen on the validation split)
SHORT, LONG = 3, 10    # epochs: "the usual 3" and a longer budget
THREADS = 1            # torch CPU threads (tiny models: one is fastest, and leaves a core to the rest)
''', ["parameters"])

code('''
import time
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from transferlab import text_world as tw
from transferlab import zoo
from transferlab.bertadam import BertAdam, bias_correction_factor
from transferlab.checks import check_choice, check_number
from transferlab.claims import Band, Compare, Ledger
from transferlab.device import env_report, resolve_device
from transferlab.selection import logme, rank_models
from transferlab.text_finetune import FAIL_MARGIN, TextRecipe, finetune, is_failed, prepare, train_text
from transferlab.text_heads import encoder_layers, text_features
from transferlab.train import fit_linear_probe
from transferlab.widgets import FinetuneExplorer, TrainingMonitor

T0, CPU0 = time.perf_counter(), time.process_time()
torch.set_num_threads(THREADS)
device = resolve_device(DEVICE)
WORLD, ZOO = DATA == "world", MODELS == "zoo"
if SMOKE:
    SEEDS, N_PER_CLASS, N_PAIRS, LRS, SHORT, LONG = (0, 1), 4, 10, (1e-3,), 1, 2
ledger = Ledger("06_nlp_transfer", smoke=SMOKE, setting=dict(DATA=DATA, MODELS=MODELS))


def load_base(name):
    """A pretrained text model with its tokenizer (model.tokenizer): a zoo entry, or a Hugging Face model."""
    if ZOO:
        return zoo.load(name, device="cpu", progress=False)
    from transferlab.text_data import load_text_model
    return load_text_model(MODELS)


def random_like(name):
    """The same architecture and tokenizer with random weights: training from scratch."""
    if ZOO:
        return zoo.ZOO[name].make_model()
    from transferlab.text_models import require_nlp
    transformers = require_nlp()
    base = load_base(name)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = transformers.AutoModel.from_config(base.config)
    model.tokenizer = base.tokenizer
    return model


def make_task(kind, n, seed=0, similarity=1.0):
    """A target task: the text world's, or (real path) the one task DATA names."""
    if WORLD:
        return tw.text_task(kind, n_per_class=n, similarity=similarity, seed=seed,
                            n_val=40 if SMOKE else 200, n_test=60 if SMOKE else 500)
    from transferlab.text_data import load_text_task
    return load_text_task(DATA, n_per_class=n, seed=seed, n_val=40 if SMOKE else 200, n_test=60 if SMOKE else 500)


BERT, GPT, CBOW = "textbert-mlm", "textgpt-clm", "textcbow"
bert = load_base(BERT)
tok = bert.tokenizer
L = len(encoder_layers(bert.base_model if hasattr(bert, "base_model") else bert))
pd.DataFrame([env_report()]).T.rename(columns={0: "this run"})
''')

md("""
## 1 · The text world: unlabelled text with structure to discover

Each sentence comes from a template (the grammar); its content words belong to a topic. Below: a few pretraining
sentences, and the target task's training and test sentences. Note that the test sentences' words never occur
in the training sentences: half of every topic's words are kept for fine-tuning, the rest for validation and
test.
""")

code('''
topic_task = make_task("topic", N_PER_CLASS)
pair_task = make_task("same_topic", N_PAIRS) if WORLD else topic_task
print(topic_task)
if WORLD:
    print("pretraining corpus:", *tw.corpus(3, seed=0), sep="\\n  ")
    lang = tw.language()
    display(pd.DataFrame({t: [", ".join(lang.words(p, i, part=s)[:4]) for p, s in
                              (("N", "train"), ("N", "test"), ("V", "train"), ("V", "test"))]
                          for i, t in enumerate(tw.TOPICS[:5])},
                         index=["nouns (fine-tuning)", "nouns (test only)", "verbs (fine-tuning)", "verbs (test only)"]))
print("train:", *topic_task.texts["train"][:3], sep="\\n  ")
print("test: ", *topic_task.texts["test"][:3], sep="\\n  ")
''')

md("""
## 2 · Word embeddings first: CBOW

Continuous bag of words turns text into a prediction task: the mean of the neighbours' vectors must predict the
word in the middle. Words that occur in the same contexts are pushed towards similar vectors. The zoo's CBOW model
was trained this way on the corpus. Does the nearest neighbour of a word (by cosine similarity) belong to the same
topic? We ask for the words fine-tuning never sees, against a random embedding of the same size.
""")

code('''
def neighbour_purity(embedding, tokenizer, words, topic_of):
    """Per topic: the fraction of its words whose nearest other word (cosine) is of the same topic."""
    ids = [tokenizer.convert_tokens_to_ids(w) for w in words]
    e = torch.nn.functional.normalize(embedding[ids].float(), dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-2)
    nearest = sim.argmax(1)
    same = [topic_of[words[i]] == topic_of[words[j]] for i, j in enumerate(nearest.tolist())]
    per_topic = pd.Series(same).groupby([topic_of[w] for w in words]).mean()
    return per_topic.values


if WORLD and ZOO:
    cbow = load_base(CBOW)
    topic_of = lang.topic_of()
    held_out = [w for t in range(10) for p in "NVA" for w in lang.words(p, t, part="test")
                if w in cbow.tokenizer.get_vocab()]
    purity = {"CBOW": neighbour_purity(cbow.embed.weight.detach(), cbow.tokenizer, held_out, topic_of),
              "random vectors": neighbour_purity(random_like(CBOW).embed.weight.detach(), cbow.tokenizer, held_out,
                                                 topic_of)}
    display(pd.DataFrame({k: [f"{v.mean():.1%} ± {v.std():.1%}"] for k, v in purity.items()},
                         index=[f"nearest word of the same topic ({len(held_out)} held-out words, per topic)"]))
    _ = ledger.judge("nlp-cbow-similar-vectors", Compare("CBOW", "random vectors", min_effect=0.3),
                     {k: v.tolist() for k, v in purity.items()},
                     claim="CBOW: words that occur in the same contexts get similar vectors",
                     measured=f"nearest-neighbour topic purity of held-out words: CBOW {purity['CBOW'].mean():.1%}, "
                              f"random {purity['random vectors'].mean():.1%} (paired over the 10 topics)")
else:
    display(Markdown("*Skipped on the real path: CBOW is the zoo's, trained on the text world.*"))
''')

md("""
## 3 · Tokenizers: WordPiece for the encoder, BPE for the decoder

Both were trained here with the `tokenizers` library on the pretraining corpus. A word the corpus never had is cut
into pieces it did have, so nothing becomes "unknown". BERT's inputs are built per task: `[CLS] sentence [SEP]`,
or `[CLS] a [SEP] b [SEP]` for a pair (with segment ids 0 and 1).
""")

code('''
example = topic_task.texts["train"][0]
rows = {"WordPiece (BERT)": tok.tokenize(example)}
if ZOO:
    rows["BPE (GPT)"] = load_base(GPT).tokenizer.tokenize(example)
    novel = tw.text_task("topic", n_per_class=1, similarity=0.0, n_val=1, n_test=1).texts["train"][0]
    rows["WordPiece, novel words"] = tok.tokenize(novel)
for name, pieces in rows.items():
    print(f"{name:<24}", " ".join(pieces))
pair = tok(*pair_task.texts["train"][0]) if WORLD else None
if pair is not None:
    print("pair input:", " ".join(tok.convert_ids_to_tokens(pair["input_ids"])))
    print("segments:  ", pair.get("token_type_ids"))
''')

md("""
## 4 · Pretraining: word vectors first, then a cloze test; and what the features are worth along the way

The zoo's BERT and GPT follow the lecture's story in miniature: their word embeddings start from CBOW vectors
trained on the same tokens (a few seconds), then the Transformer is pretrained on the corpus, BERT with masked-word
prediction, GPT with next-word prediction (`transferlab.text_zoo` has the recipes; `make zoo` runs them). Below:
BERT's masked-LM loss (from the zoo's record of the run) with two reference levels, the entropy of a word given
nothing (unigram) and given only its position; a model near the second predicts from word frequencies alone,
without using the context. At checkpoints of the same run (step 0 = CBOW vectors only), a linear probe reads what
the frozen features are worth for the target task at held-out words, from the first token (what the classifier
reads) and from the mean over tokens.
""")

code('''
CHECKPOINTS = ["textbert-mlm-s0", "textbert-mlm-s300", "textbert-mlm-s600", BERT]
if WORLD and ZOO:
    from transferlab.text_pretrain import context_free_entropy

    record = zoo.manifest()[BERT]
    curve = pd.DataFrame(record["curve"])
    levels = context_free_entropy(tw.corpus(5000, seed=0))
    probe_rows = []
    enc_topic = topic_task.encode(tok)
    for name in ["random", *CHECKPOINTS]:
        model = random_like(BERT) if name == "random" else load_base(name)
        steps = -1 if name == "random" else zoo.manifest()[name]["pretrain_steps"]
        row = dict(model=name, step=steps)
        for pooling in ("first", "mean"):
            ftr, ytr = text_features(model, enc_topic.loader("train", 256, shuffle=False), pooling=pooling)
            fva, yva = text_features(model, enc_topic.loader("val", 256), pooling=pooling)
            accs = [float((fit_linear_probe(ftr, ytr, topic_task.num_classes, epochs=100, seed=s)(fva).argmax(1)
                           == yva).float().mean()) for s in SEEDS]
            row[f"probe ({pooling} token)" if pooling == "first" else "probe (mean)"] = np.mean(accs)
            row[f"accs_{pooling}"] = accs
        probe_rows.append(row)
    probes = pd.DataFrame(probe_rows)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
    a1.plot(curve.step, curve.loss, label="masked-LM loss")
    a1.axhline(levels["unigram"], color="0.5", ls=":", label="unigram entropy")
    a1.axhline(levels["positional"], color="0.3", ls="--", label="entropy given the position")
    for s in probes.step[2:-1]:
        a1.axvline(s, color="C1", alpha=0.4)
    a1.set(xlabel="pretraining step", ylabel="cross-entropy (nats)", title="BERT pretraining (zoo record)")
    a1.legend(fontsize=8)
    for col, style in (("probe (first token)", "o-"), ("probe (mean)", "s--")):
        a2.plot(probes.step[1:], probes[col][1:], style, label=col)
    a2.axhline(probes["probe (first token)"][0], color="0.6", ls=":", label="random BERT (first token)")
    a2.set(xlabel="pretraining step (0: CBOW vectors only)", ylabel="linear probe, val accuracy", ylim=(0, 1),
           title="what the frozen features transfer (held-out words)")
    a2.legend(fontsize=8)
    plt.show()
    display(probes.drop(columns=["accs_first", "accs_mean"]).round(3))
    masked, causal = zoo.manifest()[BERT]["source_test_acc"], zoo.manifest()[GPT]["source_test_acc"]
    _ = ledger.judge("nlp-mlm-easier", Compare("masked LM", "causal LM", min_effect=0.05),
                     {"masked LM": [masked], "causal LM": [causal]},
                     claim="Predicting a masked word is easier than predicting the next one: the model sees both sides",
                     measured=f"held-out accuracy of the pretraining task (zoo records, same corpus and budget): masked "
                              f"word {masked:.1%} (BERT), next word {causal:.1%} (GPT); one run each, so the rule "
                              f"judges the point")
    early, final = probe_rows[2], probe_rows[-1]
    plateau_loss = curve[curve.step <= early["step"]].loss.iloc[-1]
    _ = ledger.judge("nlp-mlm-plateau", Compare("final", "early checkpoint", min_effect=0.1),
                     {"final": final["accs_mean"], "early checkpoint": early["accs_mean"]},
                     claim="Masked-LM pretraining learns transferable features once its loss leaves the "
                           "context-free plateau",
                     measured=f"loss {plateau_loss:.2f} at step {early['step']} (entropy given the position "
                              f"{levels['positional']:.2f}) -> {curve.loss.iloc[-1]:.2f} at step {final['step']}; "
                              f"mean-pooled probe val acc {np.mean(early['accs_mean']):.1%} -> "
                              f"{np.mean(final['accs_mean']):.1%} (CBOW vectors alone: "
                              f"{probe_rows[1]['probe (mean)']:.1%}; {len(SEEDS)} probe seeds)")
else:
    display(Markdown("*Skipped on the real path: the pretraining curve is the zoo model's.*"))
''')

md("""
## 5 · Fine-tuning BERT is like computer vision: replace the last layer

The code that *is* the recipe (in `transferlab.text_heads` and `transferlab.text_finetune`): take the pretrained
encoder, put a new linear layer on the first token's output, train everything for a few epochs with a small
learning rate, BERT's warm-up and decay, and AdamW. One run, watched live with the kit's `TrainingMonitor`:
""")

code('''
enc_topic = topic_task.encode(tok)
REF = TextRecipe(lr=1e-3, epochs=LONG)  # the learning rate is chosen on validation in section 7
monitor = TrainingMonitor("fine-tuning BERT on the topic task (one seed)")
display(monitor)
demo = prepare(bert, enc_topic, REF, seed=0)
_ = train_text(demo, enc_topic, REF, seed=0, device=device, callbacks=[monitor], val=True)
''')

md("""
### Pretrained vs from scratch, and masked LM vs causal LM, at small data

Same architecture, same tokenizer, same recipe; the only difference is where the weights start. And the same
comparison between the zoo's BERT (masked LM, reads both sides) and GPT (causal LM, reads left to right; its
classifier reads the last token's output), each with its own tokenizer and the same pretraining budget. Keep in
mind what section 4 showed: a masked LM learns only from the tokens it hides (40% here), a causal LM from every
token, so at a small budget the comparison is also one of how much each has learned. The test split is read once
per final model.
""")

code('''
def runs(base, task, recipe, seeds=SEEDS, **labels):
    return pd.DataFrame([dict(labels, **finetune(base, task, recipe, seed=s, device=device))
                         for s in tqdm(seeds, desc=str(labels), leave=False)])


scratch = random_like(BERT)
res_pre = runs(bert, enc_topic, REF, arm="pretrained BERT")
res_scr = runs(scratch, enc_topic, REF, arm="from scratch")
frames = [res_pre, res_scr]
if ZOO:
    gpt = load_base(GPT)
    res_gpt = runs(gpt, topic_task.encode(gpt.tokenizer), REF, arm="pretrained GPT")
    frames.append(res_gpt)
first = pd.concat(frames)
summary = first.groupby("arm")[["val_acc", "test_acc"]].agg(["mean", "std"])
display(summary.map(lambda v: f"{v:.3f}"))
acc = first.groupby("arm").test_acc.mean()
_ = ledger.judge("nlp-pretrained-beats-scratch", Compare("pretrained BERT", "from scratch", min_effect=0.2),
                 {"pretrained BERT": res_pre.test_acc.tolist(), "from scratch": res_scr.test_acc.tolist()},
                 claim="With little labelled text, fine-tuning a pretrained model beats training from scratch",
                 measured=f"test acc {acc['pretrained BERT']:.1%} vs {acc['from scratch']:.1%} "
                          f"({N_PER_CLASS} per class, held-out words, {len(SEEDS)} seeds, {REF.label()})")
if ZOO:
    _ = ledger.judge("nlp-mlm-vs-lm", Compare("masked LM (BERT)", "causal LM (GPT)", min_effect=0.02),
                     {"masked LM (BERT)": res_pre.test_acc.tolist(), "causal LM (GPT)": res_gpt.test_acc.tolist()},
                     claim="For classification, a masked-LM encoder (BERT) is the better initialisation than a "
                           "left-to-right LM decoder (GPT)",
                     measured=f"test acc BERT {acc['pretrained BERT']:.1%} vs GPT {acc['pretrained GPT']:.1%} "
                              f"(same data, recipe and seeds)")
''')

md("""
**Reading the MLM-vs-LM result.** The lecture prefers BERT for classification because it reads both sides of every
word. At the kit's scale the budget matters as much: a masked LM learns only from the tokens it hides, a causal LM
from every token, so after the same number of steps the decoder has seen several times more prediction targets.
The verdict above is what this run measured; lengthen BERT's pretraining (`TextZooSpec(epochs=...)`) to see
whether it changes.

### The three heads on the same pretrained encoder

The lecture's three ways to build the input and the head: **sentence** classification (topic, above), **token**
tagging (the topic of every word, `O` for function words; every token's output + a linear layer; a word's tag on
its first sub-token) and **span** extraction (question `which <verb>`, context: three noun phrases; the answer is
the phrase of the verb's topic: a start and an end score per context token). Pretrained vs from scratch, each:
""")

code('''
head_rows = []
if WORLD:
    HEAD_SEEDS = SEEDS[: max(2, len(SEEDS) // 3)]
    for kind in ("tagging", "span"):
        task = make_task(kind, N_PER_CLASS // 2 if not SMOKE else 2).encode(tok)
        for arm, base in (("pretrained", bert), ("from scratch", scratch)):
            r = runs(base, task, REF, seeds=HEAD_SEEDS, head=task.kind, arm=arm)
            head_rows.append(r)
    heads = pd.concat([*head_rows, res_pre.assign(head="sentence", arm="pretrained")[lambda d: d.seed.isin(HEAD_SEEDS)],
                       res_scr.assign(head="sentence", arm="from scratch")[lambda d: d.seed.isin(HEAD_SEEDS)]])
    head_table = heads.pivot_table(index="head", columns="arm", values="test_acc", aggfunc=["mean", "std"])
    display(head_table.map(lambda v: f"{v:.3f}"))
    data = {h: {a: g.sort_values("seed").test_acc.tolist() for a, g in heads[heads["head"] == h].groupby("arm")}
            for h in ("sentence", "token", "span")}
    from transferlab.claims import Across
    _ = ledger.judge("nlp-three-heads", Across(Compare("pretrained", "from scratch", min_effect=0.1)), data,
                     claim="One pretrained encoder serves sentence classification, token tagging and span extraction "
                           "(each with its own input and linear head)",
                     measured="; ".join(f"{h}: {np.mean(d['pretrained']):.1%} vs scratch {np.mean(d['from scratch']):.1%}"
                                        for h, d in data.items()) + f" ({len(HEAD_SEEDS)} seeds, test accuracy / exact match)")
else:
    display(Markdown("*Skipped on the real path: the token and span tasks are the text world's.*"))
''')

md("""
## 6 · Why early steps explode: Adam's bias correction, written out

Adam keeps running means of the gradient (`m`) and of its square (`v`), both started at zero, so early on both are
too small; Adam divides them by `1 - β1^t` and `1 - β2^t`. The original BERT code (`BertAdam`) did not. Here it is,
the whole optimiser (the kit's `transferlab.bertadam.BertAdam` is the same; the cell checks they agree, and that
with bias correction switched on it is `torch.optim.AdamW`, step for step):
""")

code('''
class MyBertAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, bias_correction=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s["t"], s["m"], s["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                s["t"] += 1
                p.mul_(1 - g["lr"] * g["weight_decay"])
                s["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                s["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                m, v = s["m"], s["v"]
                if g["bias_correction"]:                      # Adam
                    m, v = m / (1 - b1 ** s["t"]), v / (1 - b2 ** s["t"])
                p.addcdiv_(m, v.sqrt().add_(g["eps"]), value=-g["lr"])   # BERTAdam: m and v as they are


def agree(make_a, make_b, steps=20):
    w = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    oa, ob = make_a([a]), make_b([b])
    for t in range(steps):
        g = torch.randn(4, 3, generator=torch.Generator().manual_seed(t + 1))
        a.grad, b.grad = g.clone(), g.clone()
        oa.step()
        ob.step()
    return float((a - b).detach().abs().max())


print("this cell's BertAdam vs transferlab's, no bias correction:",
      agree(lambda p: MyBertAdam(p, lr=1e-2), lambda p: BertAdam(p, lr=1e-2)))
print("with bias correction vs torch.optim.AdamW:",
      agree(lambda p: MyBertAdam(p, lr=1e-2, weight_decay=0.01, bias_correction=True),
            lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.01, eps=1e-6)))
steps = np.arange(1, 2001)
factor = np.array([bias_correction_factor(int(t)) for t in steps])
fig, ax = plt.subplots(figsize=(7, 3), layout="constrained")
ax.plot(steps, factor)
ax.axvline(SHORT * len(enc_topic.loader("train", REF.batch_size)), color="C1", ls="--", label=f"end of {SHORT} epochs here")
ax.set(xscale="log", xlabel="optimiser step t", ylabel="(1-β1^t) / sqrt(1-β2^t)",
       title="how much larger BERTAdam's step is than Adam's (β = 0.9, 0.999)")
ax.legend()
plt.show()
print(f"step 1: {factor[0]:.2f}x, step 10: {factor[9]:.2f}x, step 100: {factor[99]:.2f}x, step 1000: {factor[999]:.2f}x")
''')

md("""
## 7 · Fine-tuning on small data is unstable: BERTAdam vs Adam, learning rates, epochs

The topic task again (20 labelled sentences per topic, held-out words): a small dataset, as in the papers. Every
combination of optimiser and learning rate, `SHORT` epochs, over every seed. A run **fails** when it ends less than
`FAIL_MARGIN` (10 points) above the majority-class accuracy: Mosbach et al.'s definition, with a margin.
Validation accuracy chooses each optimiser's learning rate; only the chosen configurations are then trained for
`LONG` epochs.
""")

code('''
majority = topic_task.majority_accuracy("train")
grid = []
for opt in ("adamw", "bertadam"):
    for lr in LRS:
        grid.append(runs(bert, enc_topic, TextRecipe(lr=lr, epochs=SHORT, optimizer=opt), optimizer=opt, lr=lr,
                         epochs=SHORT))
grid = pd.concat(grid, ignore_index=True)
grid["failed"] = [is_failed(a, majority) for a in grid.test_acc]
table = grid.groupby(["optimizer", "lr"]).agg(val=("val_acc", "mean"), test=("test_acc", "mean"),
                                               std=("test_acc", "std"), failed=("failed", "mean")).reset_index()
display(table.style.format({"val": "{:.3f}", "test": "{:.3f}", "std": "{:.3f}", "failed": "{:.0%}"}))
best_lr = table.loc[table.groupby("optimizer").val.idxmax()].set_index("optimizer").lr
long = pd.concat([runs(bert, enc_topic, TextRecipe(lr=best_lr[o], epochs=LONG, optimizer=o), optimizer=o,
                       lr=best_lr[o], epochs=LONG) for o in ("adamw", "bertadam")], ignore_index=True)
long["failed"] = [is_failed(a, majority) for a in long.test_acc]
both = pd.concat([grid, long], ignore_index=True)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), layout="constrained")
for ax, epochs in zip(axes, (SHORT, LONG), strict=True):
    d = both[both.epochs == epochs]
    for i, (opt, g) in enumerate(d.groupby("optimizer")):
        ax.scatter(np.log10(g.lr) + (i - 0.5) * 0.06, g.test_acc, alpha=0.6, label=opt)
    ax.axhline(majority + FAIL_MARGIN, color="C3", ls=":", label="failed below")
    ax.set(xlabel="log10 learning rate", ylabel="test accuracy", title=f"{epochs} epochs, one dot per seed", ylim=(0, 1))
    ax.legend(fontsize=8)
plt.show()
''')

code('''
hi = max(LRS)
a_hi, b_hi = (grid[(grid.optimizer == o) & (grid.lr == hi)].sort_values("seed") for o in ("adamw", "bertadam"))
fails = grid.groupby(["optimizer", "lr"]).failed.sum()
_ = ledger.judge("nlp-bertadam-unstable", Compare("Adam", "BERTAdam", min_effect=0.05),
                 {"Adam": a_hi.test_acc.tolist(), "BERTAdam": b_hi.test_acc.tolist()},
                 claim="Fine-tuning with BERTAdam (no bias correction) is unstable on small data; Adam's bias "
                       "correction removes most failed runs",
                 measured=f"at lr {hi:g}, {SHORT} epochs: Adam {a_hi.test_acc.mean():.1%} ± {a_hi.test_acc.std():.1%} "
                          f"({int(a_hi.failed.sum())}/{len(a_hi)} failed), BERTAdam {b_hi.test_acc.mean():.1%} ± "
                          f"{b_hi.test_acc.std():.1%} ({int(b_hi.failed.sum())}/{len(b_hi)} failed); failed runs over "
                          f"all learning rates: Adam {int(fails['adamw'].sum())}, BERTAdam {int(fails['bertadam'].sum())} "
                          f"of {len(LRS) * len(SEEDS)}")
a_short = grid[(grid.optimizer == "adamw") & (grid.lr == best_lr["adamw"])].sort_values("seed")
a_long = long[long.optimizer == "adamw"].sort_values("seed")
_ = ledger.judge("nlp-few-epochs-too-few", Compare(f"{LONG} epochs", f"{SHORT} epochs", min_effect=0.02),
                 {f"{LONG} epochs": a_long.test_acc.tolist(), f"{SHORT} epochs": a_short.test_acc.tolist()},
                 claim="The usual 3 epochs of BERT fine-tuning are too few on small data; training longer helps",
                 measured=f"Adam at lr {best_lr['adamw']:g} (chosen on val): {SHORT} epochs {a_short.test_acc.mean():.1%} "
                          f"({int(a_short.failed.sum())} failed) vs {LONG} epochs {a_long.test_acc.mean():.1%} "
                          f"({int(a_long.failed.sum())} failed), {len(SEEDS)} seeds")
''')

md("""
## 8 · Re-initialise the top layers; freeze the bottom ones; or train a LoRA adapter

The top layers of a pretrained model are specialised to the pretraining task (here: predicting a masked word), so
Zhang et al. re-initialise the top *k* and fine-tune; the bottom layers hold general features and can be frozen
as in computer vision. Parameter-efficient fine-tuning freezes *all* pretrained weights and trains small low-rank
updates to the attention projections (**LoRA**, through the `peft` library), plus the head. All
Adam at its chosen learning rate, `LONG` epochs, on the same topic task.
""")

code('''
BEST = TextRecipe(lr=float(best_lr["adamw"]), epochs=LONG)
variants = {"full fine-tune": BEST, "head only (features frozen)": replace(BEST, head_only=True)}
for k in range(1, L + 1):
    variants[f"reinit {k}"] = replace(BEST, reinit=k)
for k in range(1, L + 1):
    variants[f"freeze {k}"] = replace(BEST, freeze=k)
for r in (4,) if SMOKE else (8,):  # LoRA's adapters start at zero and want a larger rate: 3x
    variants[f"LoRA r{r}"] = replace(BEST, lora_rank=r, lr=3 * BEST.lr)
var = pd.concat([a_long.assign(variant="full fine-tune")] +
                [runs(bert, enc_topic, rec, variant=name) for name, rec in variants.items() if name != "full fine-tune"],
                ignore_index=True)
var["failed"] = [is_failed(a, majority) for a in var.test_acc]
vt = var.groupby("variant", sort=False).agg(val=("val_acc", "mean"), test=("test_acc", "mean"),
                                            std=("test_acc", "std"), failed=("failed", "mean"),
                                            trainable=("trainable", "max"))
display(vt.style.format({"val": "{:.3f}", "test": "{:.3f}", "std": "{:.3f}", "failed": "{:.0%}", "trainable": "{:,}"}))
''')

code('''
def arm(name):
    return var[var.variant == name].sort_values("seed").test_acc.to_numpy()


reinits = [f"reinit {k}" for k in range(1, L + 1)]
best_k = max(reinits, key=lambda n: vt.loc[n, "val"])          # chosen on validation
_ = ledger.judge("nlp-reinit-top-layers", Compare(best_k, "full fine-tune", min_effect=0.02),
                 {best_k: arm(best_k).tolist(), "full fine-tune": arm("full fine-tune").tolist()},
                 claim="Re-initialising the top layers before fine-tuning helps on small data (the top layers are "
                       "too specific to the pretraining task)",
                 measured="test acc " + ", ".join(f"{n} {vt.loc[n, 'test']:.1%}" for n in reinits) +
                          f" vs none {vt.loc['full fine-tune', 'test']:.1%}; k chosen on val: {best_k}")
freezes = [f"freeze {k}" for k in range(1, L + 1)]
best_f = max(freezes, key=lambda n: vt.loc[n, "val"])
# "at little cost": the accuracy ratio frozen / full, per seed, at least 0.97 (partly: 0.9); 2 = no upper limit here
_ = ledger.judge("nlp-freeze-bottom", Band("frozen / full", 0.97, 2.0, partly_low=0.9),
                 {"frozen / full": (arm(best_f) / arm("full fine-tune")).tolist()},
                 claim="The bottom layers (embeddings first) can be frozen, as in computer vision, at little cost",
                 measured=f"{best_f} (chosen on val; freeze 1 = embeddings, k = embeddings + k-1 layers): "
                          f"{vt.loc[best_f, 'test']:.1%} vs full {vt.loc['full fine-tune', 'test']:.1%} with "
                          f"{vt.loc[best_f, 'trainable']:,} of {vt.loc['full fine-tune', 'trainable']:,} parameters "
                          f"trained")
loras = [n for n in vt.index if n.startswith("LoRA")]
best_r = max(loras, key=lambda n: vt.loc[n, "val"])
_ = ledger.judge("nlp-lora-matches-finetune", Band("LoRA / full", 0.97, 2.0, partly_low=0.9),
                 {"LoRA / full": (arm(best_r) / arm("full fine-tune")).tolist()},
                 claim="LoRA (parameter-efficient fine-tuning) comes close to full fine-tuning while training a small "
                       "fraction of the parameters",
                 measured=f"{best_r} {vt.loc[best_r, 'test']:.1%} ({vt.loc[best_r, 'trainable']:,} trainable) vs full "
                          f"{vt.loc['full fine-tune', 'test']:.1%} ({vt.loc['full fine-tune', 'trainable']:,}) vs head "
                          f"only {vt.loc['head only (features frozen)', 'test']:.1%} "
                          f"({vt.loc['head only (features frozen)', 'trainable']:,})")
''')

md("""
### Explore

Choose re-init *k*, freeze *k* and a LoRA rank; **Run** fine-tunes that combination for three seeds (a few seconds
each) and adds it to the chart, next to what the lesson measured.
""")

code('''
def recompute(reinit, freeze, lora_rank, seed):
    rec = replace(BEST, reinit=reinit, freeze=freeze, lora_rank=lora_rank, lr=BEST.lr * (3 if lora_rank else 1))
    row = finetune(bert, enc_topic, rec, seed=seed, device=device)
    return dict(acc=row["test_acc"], trainable=row["trainable"])


def knobs(name):
    k = int(name.split()[-1].lstrip("r")) if name[-1].isdigit() else 0
    return dict(reinit=k if name.startswith("reinit") else 0, freeze=k if name.startswith("freeze") else 0,
                lora_rank=k if name.startswith("LoRA") else 0)


seen = var[~var.variant.str.startswith("head")]
explorer = FinetuneExplorer(pd.DataFrame([dict(**knobs(v), seed=s, acc=a, trainable=t) for v, s, a, t in
                                          zip(seen.variant, seen.seed, seen.test_acc, seen.trainable, strict=True)]),
                            layers=L, recompute=recompute, seeds=SEEDS[:3])
explorer
''')

md("""
## 9 · LogME on text features: which pretrained model to fine-tune?

LogME (lesson 04) scores frozen features by the evidence of a linear model on them; the LogME article's NLP case
ranks language models this way. Here: the zoo's text models (BERT at three pretraining budgets, GPT, CBOW's bag of
embeddings, and a random BERT) on the topic task, against their fine-tuned test accuracy (the ground truth).
""")

code('''
if WORLD and ZOO:
    candidates = {"random BERT": scratch, **{n: load_base(n) for n in (*CHECKPOINTS, GPT, CBOW)}}
    LOGME_SEEDS = SEEDS[: max(2, len(SEEDS) // 5)]
    sel = []
    for name, model in candidates.items():
        task = topic_task.encode(model.tokenizer)
        feats, labels = text_features(model, task.loader("train", 256, shuffle=False))
        known = {BERT: res_pre, GPT: res_gpt, "random BERT": res_scr}
        accs = (known[name][known[name].seed.isin(LOGME_SEEDS)].test_acc if name in known
                else runs(model, task, REF, seeds=LOGME_SEEDS).test_acc)
        sel.append(dict(model=name, logme=logme(feats, labels), finetuned=float(np.mean(accs))))
    sel = pd.DataFrame(sel).sort_values("finetuned", ascending=False)
    display(sel.round(3))
    tau = rank_models(dict(zip(sel.model, sel.logme, strict=True)), dict(zip(sel.model, sel.finetuned, strict=True)))
    _ = ledger.judge("nlp-logme-ranks-text-models", Band("weighted tau", 0.5, 1.0), {"weighted tau": [tau]},
                     claim="LogME ranks pretrained language models as fine-tuning does (the LogME article's NLP case)",
                     measured=f"weighted Kendall tau {tau:.2f} between LogME and fine-tuned test accuracy over "
                              f"{len(sel)} text models ({len(LOGME_SEEDS)} fine-tuning seeds each)")
else:
    display(Markdown("*Skipped on the real path: with one model there is nothing to rank (lesson 04 ranks several).*"))
''')

md("""
## Summary

Generated from this run's records (the claims ledger of the docs site is built from the same records):
""")

code('''
elapsed, cpu = time.perf_counter() - T0, time.process_time() - CPU0
display(pd.DataFrame(ledger.records.values())[["id", "measured", "verdict"]])
display(Markdown(f"This run: **{elapsed:.0f} s** wall-clock, {cpu:.0f} s of CPU time, on {device} with "
                 f"{torch.get_num_threads()} torch thread(s), "
                 f"{'SMOKE budgets — not the lesson' if SMOKE else f'{len(SEEDS)} seeds'}. On a machine shared with "
                 f"other jobs the CPU time is the better guide to what an idle core would take."))
''')

md("""
## Exercises

1. **Which optimiser failed more often** at the largest learning rate, `"adamw"` or `"bertadam"`? (`answer_1`)
2. **How many times larger** is BERTAdam's update than Adam's at step 10 (β = 0.9, 0.999)? (`answer_2`, within 2%)
3. **Which re-init k did validation choose** (the name in the table, e.g. `"reinit 1"`)? (`answer_3`)
4. Lower the similarity: build `make_task("topic", N_PER_CLASS, similarity=0.0).encode(tok)` and fine-tune `bert`
   and `scratch` on it with `runs(...)`. What is left of pretraining's advantage when the target's words and
   grammar are all new? (Try `similarity=0.67`: new grammar, known words.)
""")

code('''
# exercise 1
answer_1 = None   # "adamw" or "bertadam"
fails_hi = grid[grid.lr == max(LRS)].groupby("optimizer").failed.sum()  # failed runs per optimiser, largest lr
check_choice("More failed runs at the largest learning rate", answer_1, fails_hi.idxmax(),
             explain=f"failed runs: {fails_hi.to_dict()}")
''')

code('''
# exercise 2
answer_2 = None   # a number, e.g. 3.2
check_number("BERTAdam / Adam update at step 10", answer_2, bias_correction_factor(10), rel_tol=0.02)
''')

code('''
# exercise 3
answer_3 = None   # e.g. "reinit 1"
check_choice("Re-init k chosen on validation", answer_3, best_k)
''')


def build() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, src, tags in CELLS:
        cell = nbformat.v4.new_markdown_cell(src) if kind == "markdown" else nbformat.v4.new_code_cell(src)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def main() -> int:
    path = ROOT / "notebooks" / "06_nlp_transfer.ipynb"
    nbformat.write(build(), path)
    print(f"wrote {path} ({len(CELLS)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
