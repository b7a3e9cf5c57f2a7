"""Stochastic Weight Averaging (Izmailov et al., 2018) over ``torch.optim.swa_utils``, as callbacks of ``fit``.

The recipe, as the paper gives it:

1. Train with SGD and the usual decaying learning rate for most of the budget (the paper's schedule,
   :func:`sgd_lr_factor`, over the SGD budget ``B``) until ``swa_start`` epochs are done.
2. From then on hold the learning rate at ``swa_lr`` (:class:`~torch.optim.swa_utils.SWALR` anneals to it:
   :class:`SWALRCallback`), and at the end of every epoch fold the current weights into the running average
   ``w_swa <- (w_swa * n_models + w) / (n_models + 1)`` (:class:`~torch.optim.swa_utils.AveragedModel` keeps it:
   :class:`SWACallback`). The weights after ``swa_start`` epochs are the first ones averaged.
3. Before using the average, recompute its BatchNorm statistics with one pass over the training data
   (:func:`~torch.optim.swa_utils.update_bn`): the averaged weights never produced activations during
   training, so the running statistics of any SGD iterate do not belong to them.

:class:`SWACallback` is SWA as the fast.ai contributor wrote it for fast.ai: a training callback holding the
model, the averaged model and ``swa_start`` (epochs counted from 1), updated at the end of each epoch, with the
BatchNorm statistics fixed by one pass when training ends; here ``AveragedModel`` does the averaging.

``train_sgd`` is the baseline; ``train_swa`` runs the recipe once and returns the averaged model at several
budgets (1, 1.25 and 1.5 ``B`` by default): after ``swa_start`` the learning rate no longer depends on where
the run ends, so one run serves all budgets.

**Runs that share their beginning.** The SGD runs at 1, 1.25 and 1.5 ``B`` coincide for their first ``B / 2``
epochs (the schedule is constant there), and every SWA variant *is* the SGD run until ``swa_start``.
:func:`sgd_checkpoints` trains the shared part once and keeps :class:`Checkpoint`\\ s (weights, optimizer state,
the loader's position); :func:`resume_sgd` and :func:`resume_swa` continue from one as often as needed. For the
kit's loaders and a model without dropout a resumed run is the unbranched run, number for number (tested).

The modules: :mod:`~transferlab.swa.schedule` (SGD's side: the schedule, ``SWALR``), :mod:`~transferlab.swa.averaging`
(the callback, ``update_bn``, the running-average exercise), :mod:`~transferlab.swa.runs` (whole runs and
checkpoints). Ensembles of snapshots, FGE and cyclic SWA are in :mod:`transferlab.ensembles`.
"""

from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from .averaging import SWACallback, averaged_module, bn_update, check_running_average
from .runs import Checkpoint, resume_sgd, resume_swa, sgd_checkpoints, train_sgd, train_swa
from .schedule import PaperSchedule, SWALRCallback, sgd_lr_factor, swa_epochs

__all__ = ["sgd_lr_factor", "swa_epochs", "PaperSchedule", "SWALRCallback", "SWACallback", "train_sgd", "train_swa",
           "Checkpoint", "sgd_checkpoints", "resume_sgd", "resume_swa", "bn_update", "averaged_module",
           "check_running_average", "AveragedModel", "SWALR", "update_bn"]
