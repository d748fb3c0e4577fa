"""What the dashboard's server process loads: never imported by the dashboard kernel or the pipeline.

- `app.server.kernel_limits.DashboardKernelManager`: a cap on live kernels and the shutdown of kernels no browser
  is connected to, so that a public dashboard cannot be exhausted by page requests. voila.json names it for
  standalone Voila (`make run`); binder/postBuild installs the same settings for Jupyter Server (Binder).
"""
