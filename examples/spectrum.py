"""Compute and print the Lyapunov spectrum of a recurrent network along input sequences."""

import torch

import optuna_lyap

torch.manual_seed(0)
lstm = torch.nn.LSTM(input_size=4, hidden_size=32, num_layers=2, batch_first=True)
inputs = torch.randn(15, 200, 4)  # B x T x I: 15 sequences of 200 steps

spec = optuna_lyap.lyapunov_spectrum(lstm, inputs, warmup=50, seed=0)
print(spec)
print(f"state dimension D = {spec.dim} (h and c of both layers)")
print(f"largest exponent   {spec.max:+.4f} +- {float(spec.stderr[0]):.4f} nats/step")
print(f"Kaplan-Yorke dim.  {spec.kaplan_yorke_dimension:.3f}")
print(f"sum of positives   {spec.sum_positive:.4f} nats/step")

# The seed papers' convention: the LSTM cell state held fixed, the h-part of the state only.
print("state='h':", optuna_lyap.lyapunov_spectrum(lstm, inputs, warmup=50, state="h", seed=0))
