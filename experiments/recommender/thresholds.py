"""Every number the recommender's rules compare against, named and explained.

Accuracies are fractions (0.885 = 88.5 %); "points" are percentage points
(train 0.93 - val 0.88 = 5.0 points). Losses are mean cross-entropy in nats.

Calibrated on real runs of this trainer on Fashion-MNIST (54 000 training / 6 000
validation images): a default run (adam 1e-3, [256, 128], dropout 0.2, cosine,
15 epochs) reaches 89.5 % validation / 89.2 % test with a train/val gap of 2.7
points; its gradient_norm_max / gradient_norm ratio is 4-7 in epoch 1 (large
initial gradients) and 1.5-2.5 afterwards; its dead-unit fraction stays below 1 %.
Runs with problems (adam at 0.01/0.03, sgd at 1e-4/1e-3, momentum at 0.2/0.5, a
[1024, 512] net without dropout on 10 000 images, [4]/[8]/[16] nets, tanh at 0.01)
set the other limits. A good MLP reaches 88-90 % test accuracy; chance is 10 %.
"""

from __future__ import annotations

import math

THRESHOLDS: dict = {
    # --- general ---------------------------------------------------------------------------
    "chance_accuracy": 0.10,  # 10 balanced classes: accuracy of guessing
    "uniform_loss": math.log(10),  # 2.30: cross-entropy of predicting 1/10 for every class
    "min_epochs_for_trends": 3,  # curve-shape rules need at least this many epochs
    "window": 5,  # "the last k epochs" for end-of-run trends (shorter runs use all epochs)
    "min_epochs_cancelled": 2,  # a cancelled/failed run with fewer epochs gets only the performance summary
    # --- performance category (test accuracy when known, else best validation accuracy) ---
    "excellent_accuracy": 0.89,  # >= : top of what an MLP reaches on Fashion-MNIST
    "good_accuracy": 0.86,  # >= : a sound MLP run
    "fair_accuracy": 0.80,  # >= : learns, but clearly below a tuned MLP; below = poor
    "converged_fraction_of_best": 0.95,  # epochs_to_95pct_best: first epoch with val acc >= 95 % of the best
    "fast_convergence": 0.25,  # (epochs_to_95pct_best - 1) / (epochs run - 1) <= this -> "fast"
    "slow_convergence": 0.60,  # ... > this -> "slow"; in between "moderate"
    # --- divergence --------------------------------------------------------------------------
    "divergence_loss": 4 * math.log(10),  # 9.21: the trainer's own limit (4x uniform guessing)
    "explosion_ratio": 1.5,  # final train loss >= 1.5 x its minimum ...
    "explosion_min_loss": 0.5 * math.log(10),  # ... and above 1.15 (half of uniform guessing) -> blown up
    "collapse_loss_fraction": 0.97,  # final train loss >= 97 % of uniform_loss (2.23) ...
    "collapse_rise": 0.05,  # ... after a minimum at least 5 % lower ...
    "collapse_accuracy": 0.15,  # ... with final val accuracy <= 15 % -> collapsed to guessing
    "divergence_lr_factor": 10.0,  # divide learning_rate by this after a divergence
    "divergence_clip_lr": 0.1,  # sgd/momentum above this rate also get gradient clipping
    "clip_percentile": 90,  # gradient_clip = this percentile of the healthy epochs' mean gradient norms
    "default_gradient_clip": 5.0,  # clip value when no healthy gradient norm was recorded
    # --- learning rate too high (oscillation) ---------------------------------------------------
    "oscillation_min_steps": 4,  # epoch-to-epoch steps needed to judge oscillation
    "oscillation_rise": 0.01,  # a step counts as a rise when train loss grows by more than 1 % (relative)
    "oscillation_fraction": 0.20,  # rises in >= 20 % of the steps (and at least oscillation_min_rises) ...
    "oscillation_min_rises": 2,  # ... at least this many rises
    "oscillation_min_loss": 0.25,  # only steps starting above this train loss count (below it the net
    #                                 already fits the training set: small rises are noise, not the rate)
    "early_epochs": 3,  # "early" = the first 3 epochs for the early validation-loss rise
    "early_val_loss_rise": 0.05,  # val loss up > 5 % (relative) from one early epoch to the next ...
    "train_loss_not_low": 0.45,  # ... while train loss is still above this (a fitted MLP is ~0.25)
    "lr_high_factor": 3.0,  # divide learning_rate by this
    # --- learning rate too low ---------------------------------------------------------------------
    "lr_low_train_accuracy": 0.80,  # only when final train accuracy is below this
    "lr_low_flat_decrease": 0.10,  # "barely moves": train loss fell < 10 % (relative) over the whole run ...
    "lr_low_flat_loss": 1.0,  # ... and is still above this (uniform guessing is 2.30)
    "lr_low_extreme_decrease": 0.03,  # fell < 3 % over the run: extremely flat -> raise x10 instead of x3
    "lr_low_recent_decrease": 0.05,  # "slow but steady": train loss fell >= 5 % over the last window ...
    "lr_low_min_steps": 1000,  # ... after at least this many optimizer steps (fewer: the run is just short),
    #                             unless the rate is below low_lr_for_optimizer
    "lr_low_very_low_train_accuracy": 0.70,  # slow and below 70 % train accuracy -> x10
    "lr_low_factor": 3.0,  # multiply learning_rate by this
    "lr_low_extreme_factor": 10.0,  # ... or this when extremely flat / very low accuracy
    # A rate below these counts as low for the optimizer (typical good rates for these MLPs:
    # sgd 0.05-0.2, momentum(0.9) 0.005-0.05, adam/rmsprop 3e-4-3e-3); used to choose fixes.
    "low_lr_for_optimizer": {"sgd": 0.01, "momentum": 0.003, "rmsprop": 1e-4, "adam": 1e-4},
    # A rate at or above these counts as high (adam at 0.01 oscillates and kills ReLUs here).
    # "more epochs" expected gain: at most half the distance to 91 % (about the best an MLP
    # reaches on Fashion-MNIST validation), whatever the log-fit of the curve says.
    "mlp_ceiling_accuracy": 0.91,
    "extrapolation_headroom_share": 0.5,
    # A rate >= 3x the optimizer's "high" value: lowering it outranks warm-up/clipping.
    "very_high_lr_multiple": 3.0,
    "high_lr_for_optimizer": {"sgd": 0.5, "momentum": 0.1, "rmsprop": 0.01, "adam": 0.01},
    # --- overfitting ----------------------------------------------------------------------------------
    "overfit_gap_points": 4.0,  # train - val accuracy at the last epoch above this ...
    "overfit_gap_rise_points": 1.0,  # ... and grown by more than this since the val-loss minimum ...
    "overfit_val_loss_rise": 0.03,  # ... and val loss risen more than this (nats) above its minimum
    #                                 while train loss kept falling
    "overfit_l2_start": 1e-4,  # l2 to use when it was 0
    "overfit_l2_factor": 3.0,  # otherwise multiply l2 by this
    "overfit_dropout_step": 0.2,  # add this to dropout (capped at 0.9, the field's maximum)
    "overfit_dropout_max_for_increase": 0.5,  # only raise dropout when it is below this
    "early_stopping_patience": 3,  # patience to suggest when early stopping is off
    "epochs_margin": 2,  # or epochs = best epoch + this margin
    "large_network_params": 1_000_000,  # above this many parameters, also suggest halving the widths
    # --- underfitting ------------------------------------------------------------------------------------
    "underfit_train_accuracy": 0.87,  # final train accuracy below this (a fitted MLP is > 0.90) ...
    "underfit_flat_points": 1.0,  # ... gaining < 1 point over the last window (linear fit), or any hidden
    #                                layer narrower than tiny_width ...
    "underfit_max_gap_points": 3.0,  # ... with train - val gap below this (the net is not memorising)
    "tiny_width": 64,  # a hidden layer narrower than this is "tiny": widen it first
    "widen_to_min": 128,  # widened layers get max(4 x width, this) units (max 2048)
    "heavy_dropout": 0.5,  # dropout >= this counts as heavy regularisation (lower it by 0.3)
    "heavy_l2": 1e-3,  # l2 >= this counts as heavy regularisation (divide by 10)
    "capacity_over_dead_width": 16,  # a hidden layer narrower than this caps accuracy whatever the rate:
    #                                   underfitting fires even beside rate advice and outranks dead units
    #                                   (a 4-unit layer with "dead" units is first of all a 4-unit layer)
    "more_epochs_factor": 1.5,  # longer runs: epochs x 1.5 (at least +10, at most 200)
    # --- over-regularisation --------------------------------------------------------------------------
    "overreg_dropout": 0.5,  # dropout >= this is heavy for these MLPs (the default run uses 0.2) ...
    "overreg_l2": 1e-2,  # ... or l2 >= this (useful l2 here is 1e-5..1e-3; 1e-2 already shrinks the weights
    #                       faster than the data grows them)
    "overreg_train_accuracy": 0.87,  # ... and the final train accuracy below this (a fitted MLP is > 0.90) ...
    "overreg_max_gap_points": 3.0,  # ... and close to val: train - val below this (not memorising) ...
    "overreg_min_train_loss": 0.40,  # ... and the final train loss above this (a fitted MLP is ~0.25)
    "overreg_dropout_target": 0.2,  # propose dropout min(this, half of it): the default run's dropout
    "overreg_l2_factor": 10.0,  # propose l2 / this ...
    "overreg_l2_target": 1e-3,  # ... and at most this (the top of the useful range)
    # --- batch size -------------------------------------------------------------------------------------
    "large_batch": 512,  # a batch >= this ...
    "large_batch_max_steps": 500,  # ... that gave fewer optimizer steps than this in the whole run ...
    "large_batch_train_accuracy": 0.85,  # ... with train accuracy still below this: too few updates
    "large_batch_target": 128,  # propose this batch (>= 4x the updates per epoch at the same rate)
    "small_batch": 16,  # a batch <= this with a noisy val curve (the plateau rule's noise test) ...
    "small_batch_target": 64,  # ... -> this batch: 4x less gradient noise per step
    # --- still improving -------------------------------------------------------------------------------
    "improving_gain_points": 0.5,  # val accuracy gained > 0.5 points over the last window (linear fit)
    #                                 and more than the binomial std of the val accuracy (noise) ...
    "improving_best_within": 1,  # ... and the best epoch is the last or at most this many before it
    "extra_epochs_min": 10,  # suggest at least this many more epochs
    "short_run_epochs": 5,  # a run of at most this many epochs (2 are enough: one step to measure) ...
    "steep_gain_points": 1.0,  # ... whose val accuracy rose more than this over its last epoch (and more
    #                             than the binomial noise) stopped far from convergence: train longer is
    #                             the top (high-priority) advice
    # --- instability ---------------------------------------------------------------------------------------
    "instability_epochs": 5,  # "early in training" = the first 5 epochs
    "loss_spike": 0.10,  # an early epoch's train loss > previous epoch's by more than 10 % (relative)
    "grad_spike_ratio": 6.0,  # gradient_norm_max / gradient_norm above this in an early epoch after the
    #                           first (epoch 1 is 4-10 in healthy runs: the initial gradients are large)
    "first_epoch_loss": 1.5 * math.log(10),  # epoch 1's mean train loss above 3.45 (1.5x uniform guessing)
    #                                           and lower in epoch 2: the first steps blew up
    "first_epoch_grad_spike_ratio": 15.0,  # epoch 1's max/mean gradient-norm ratio above this (healthy: <= 10)
    "warmup_epochs": 3,  # warm-up to suggest (2 when the run has <= 10 epochs; always < epochs)
    # --- plateau / noise ------------------------------------------------------------------------------------
    "noise_std_points": 0.5,  # the last window's val accuracy drops at least once and its std around
    #                            its linear trend is above this ...
    "noise_binomial_multiple": 1.0,  # ... and above this x the binomial std of an accuracy on the val set
    #                                   (sqrt(p(1-p)/n_val): 0.4 points on 6 000 images, 3 points on 100)
    "plateau_patience": 5,  # no new best val accuracy for this many epochs with a constant schedule
    "batch_factor": 2,  # noisy: double the batch (max 4096)
    # --- dead / saturated units -------------------------------------------------------------------------------
    "dead_fraction": 0.30,  # relu (and leaky_relu): > 30 % of hidden units dead at the last epoch
    "dead_fraction_severe": 0.50,  # > 50 %: priority high
    "saturated_fraction": 0.30,  # tanh: > 30 % of hidden units saturated at the last epoch
    "dead_lr_factor": 3.0,  # divide learning_rate by this
    # --- history ------------------------------------------------------------------------------------------------
    "history_min_runs": 3,  # other finished runs with a best validation accuracy needed
    "history_min_group_runs": 2,  # runs per value before a direction is claimed
    "history_min_difference_points": 1.0,  # mean best-val difference needed to claim a direction
    "history_max_changes": 3,  # move at most this many fields toward the best run
}

# --- live diagnosis (experiments/recommender/live_diagnosis.py: judged after every epoch) --------------
# Calibrated on real runs of this trainer (default adam 1e-3 [256, 128] dropout 0.2 cosine on full data and
# on 2 000 / 5 000 images; sgd 0.1, momentum 0.01, rmsprop, tanh, batch 32, a [1024, 512] net without
# dropout) which must never get a critical finding, and flawed ones (adam 0.03-1, sgd 0.5-5, momentum
# 0.2-0.5, rmsprop 0.01-0.1, rates 1e-5) which should, as early as possible.
THRESHOLDS.update({
    "live_explosion_ratio": 1.5,  # divergence: train loss >= 1.5x its minimum so far ...
    "live_explosion_min_loss": 0.5 * math.log(10),  # ... and above 1.15 (half of uniform guessing)
    "live_collapse_learned_accuracy": 0.30,  # divergence: val accuracy had reached this ...
    "live_collapse_accuracy": 0.15,  # ... and fell to this or below (guessing is 10 %)
    "live_grad_growth": 20.0,  # exploding gradients: the mean gradient norm grew > 20x its minimum so far ...
    "live_grad_min_epoch": 2,  # ... (judged from epoch 2 on: epoch 1's norms are the reference)
    "live_grad_critical_growth": 100.0,  # ... > 100x: critical (the run is about to diverge)
    "live_grad_spike_ratio": 25.0,  # or one batch's norm > 25x the epoch's mean after epoch 1 (healthy: < 10)
    "live_not_learning_epochs": 2,  # not learning: after at least this many epochs ...
    "live_not_learning_min_steps": 20,  # ... and this many optimizer steps (1-step epochs say nothing yet) ...
    "live_chance_margin": 0.10,  # ... the best val accuracy is still within 10 points of chance (<= 20 %), or
    "live_slow_accuracy": 0.50,  # ... below 50 % by more than live_noise_sigmas binomial standard deviations
    "live_noise_sigmas": 2.0,  # (sqrt(p(1-p)/n_val): 30 val images -> below ~32 %, 6 000 -> below ~49 %);
    #                            healthy runs were >= 60 % after 2 epochs even on 300 images, rates 10-100x
    #                            too low 30-47 % (sgd 1e-3 / 1e-4, adam 1e-5, rmsprop 1e-5, dropout 0.9)
    "live_dead_fraction": 0.50,  # dead units (relu, leaky_relu): > 50 % of hidden units dead (warning) ...
    "live_dead_critical_fraction": 0.90,  # ... > 90 % dead with val accuracy below ...
    "live_dead_critical_accuracy": 0.50,  # ... this: critical (what is left cannot learn the task)
    "live_saturated_fraction": 0.50,  # tanh: > 50 % of hidden units saturated (warning)
    "live_plateau_patience": 5,  # plateau: no new best val accuracy for 5 epochs at a constant rate (warning)
    "live_plateau_min_gain": 0.001,  # "new best" = above the previous best by more than 0.1 point
})

# --- live diagnosis in a sweep (diagnose_sweep_trial: diagnostic pruning's sweep-only findings) ----------
# Chosen on bench/diagnostic_pruning.py's "dev" setting only (seeds 1-3, 20 trials x 12 epochs, 5 000
# images); its "heldout" setting (seeds 11-13) was never looked at while choosing them. On the dev trials'
# full curves, the ceiling below never fell short of a trial's final best by more than 1.5 points from
# epoch 3 on (median: 3.9 points above it), except at high rates before the decay, hence the wait.
THRESHOLDS.update({
    "sweep_min_epoch": 3,  # sweep findings only from epoch 3 (at epoch 2 a slow starter looks flat)
    "sweep_hopeless_margin": 0.03,  # hopeless: the curve's ceiling is > 3 points below the sweep's best
    "sweep_noise_factor": 2.0,  # ceiling = best so far + log-fit slope x ln(budget/epoch) + 2x the curve's
    #                             largest drop below its running best (a noisy curve may still jump)
    "sweep_high_rate_wait": 2 / 3,  # at/above the optimizer's high rate with a decaying schedule: no sweep
    #                                 finding before 2/3 of the epochs (those curves jump once the rate
    #                                 decays: rmsprop 0.037 went 63 -> 76 % at epoch 7 of 12)
    "sweep_plateau_patience": 3,  # sweep plateau: no new best val accuracy for 3 epochs ...
    "sweep_plateau_margin": 0.02,  # ... while more than 2 points below the sweep's best
})
