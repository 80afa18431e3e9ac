"""The published training recipes of the seeds, as keyword arguments of ``train.retrain`` /
``TrainingBenchmark`` (and, for π's fine-tuning, of ``parsec_search.finetune``).

They are GPU-scale (hundreds of epochs of 20-cell networks on CIFAR-10 or ImageNet, neither of which can be
fetched here: point ``data`` at an image folder or ``.npz``); the benchmarks use scaled-down settings and
say so. Where a paper is ambiguous the choice is noted beside the value.
"""

from __future__ import annotations

#: PARSEC §4.1: the mode retrained from scratch on CIFAR-10. DARTS' recipe, with PARSEC's path dropout of 0.4
#: where DARTS used 0.2; 5 initialisations reported as mean ± std.
PARSEC_CIFAR10 = {"C": 36, "layers": 20, "epochs": 600, "batch_size": 96, "lr": 0.025, "weight_decay": 3e-4,
                  "grad_clip": 5.0, "cutout": 16, "drop_path": 0.4, "aux_weight": 0.4, "inits": 5}

#: PARSEC §4.3: the CIFAR-10 cell in DARTS' 14-cell ImageNet network, mobile setting (48 channels, < 600 M
#: multiply-adds at 224x224), DARTS' hyperparameters. The paper says 600 epochs *and* "the same hyperparameters
#: as DARTS", whose schedule is 250 epochs with lr x0.97 per epoch; we take DARTS' 250 (PARSEC brief A9).
PARSEC_IMAGENET = {"C": 48, "layers": 14, "stem": "imagenet", "epochs": 250, "batch_size": 128, "lr": 0.1,
                   "lr_decay": 0.97, "weight_decay": 3e-5, "grad_clip": 5.0, "label_smoothing": 0.1, "aux_weight": 0.4}

#: PARSEC §4.2: π fine-tuned for 10 epochs on the final network (Adam lr 0.01, batch 96, auxiliary towers,
#: cutout); keyword arguments of ``parsec_search.finetune`` (``epochs`` is its budget).
PARSEC_FINETUNE = {"C": 36, "layers": 20, "epochs": 10, "arch_lr": 0.01, "batch_size": 96, "aux_weight": 0.4, "cutout": 16}

#: AlphaX App. 9.2: how each sampled NASNet-style network is trained during the search: 70 epochs, which is
#: three SGDR periods (10 + 20 + 40), base lr 0.05, batch 144, momentum 0.9, path dropout 0.3, dense dropout
#: 0.2, auxiliary classifier at 2/3 depth (0.4), cutout 16 (listed with the search's augmentation). The
#: paper's Gaussian initialisation (std 0.01) and 40x40-crop augmentation are not reproduced.
ALPHAX_SEARCH = {"epochs": 70, "sgdr_period": 10, "sgdr_mult": 2, "lr": 0.05, "batch_size": 144, "drop_path": 0.3,
                 "dropout": 0.2, "aux_weight": 0.4, "cutout": 16}

#: AlphaX §4.1.2 / App. 9.2: the top 20 by preliminary accuracy are trained further (530 or 560 epochs: the
#: two sections disagree; 560 continues the SGDR periods 80 + 160 + 320); ``train.finetune_top(bench, rows,
#: k=..., epochs=...)`` with an evaluator built from ``ALPHAX_SEARCH``.
ALPHAX_FINETUNE = {"k": 20, "epochs": 560}
