"""Tune your own GRU with the Lyapunov pruner: the monitor is the one line the loop gains."""

import optuna
import torch

import optuna_lyap

# Tiny networks train fastest on one torch thread, and leave the other cores to other work;
# optuna_lyap's own calls (spectra, AeLLE fits) already run on one (docs/spectrum.md, Threads).
torch.set_num_threads(1)
torch.manual_seed(0)
x = torch.randn(512, 30, 3)  # a toy task: the sign of the running sum at the end
y = (x.sum(dim=(1, 2)) > 0).long()
x_val, y_val, x_train, y_train = x[:128], y[:128], x[128:], y[128:]


def objective(trial: optuna.Trial) -> float:
    hidden = trial.suggest_int("hidden", 4, 48, log=True)
    lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
    rnn, head = torch.nn.GRU(3, hidden, batch_first=True), torch.nn.Linear(hidden, 2)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=lr)
    monitor = optuna_lyap.LyapunovMonitor(trial, x_val[:15], steps=(0, 1), optimizer=opt)

    def accuracy() -> float:
        with torch.no_grad():
            return (head(rnn(x_val)[0][:, -1]).argmax(1) == y_val).float().mean().item()

    monitor.step(rnn, accuracy(), 0)  # the untrained network's spectrum
    for epoch in range(1, 9):
        for i in range(0, len(x_train), 64):
            loss = torch.nn.functional.cross_entropy(
                head(rnn(x_train[i : i + 64])[0][:, -1]), y_train[i : i + 64]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        # Reports, stores spectra, prunes; a finished training is kept, not pruned.
        monitor.step(rnn, accuracy(), epoch, prune=epoch < 8)
    return accuracy()


if __name__ == "__main__":
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna_lyap.LyapunovPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    study.optimize(objective, n_trials=20)
    print("best", study.best_value, study.best_params)
