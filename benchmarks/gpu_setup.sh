# Sourced by the GPU scripts (gpu_check.sh, gpu_train_trials.sh) in the repo root of a lent GPU
# machine: prints the GPU, installs the carried wheels (.whl) into /tmp/site, puts the package
# there by its import names (no build step: the machine may lack a new setuptools) and prints the
# versions. Returns non-zero when the package does not import.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || return 1
export PYTHONPATH=/tmp/site
ln -sfn "$PWD/core" /tmp/site/netdiffusion
ln -sfn "$PWD/plugins/scapy_ext" /tmp/site/netdiffusion_scapy
ln -sfn "$PWD/plugins/zeek_bridge" /tmp/site/netdiffusion_zeek
ln -sfn "$PWD/plugins/tcpreplay_wrapper" /tmp/site/netdiffusion_tcpreplay
python3 -c "import torch, diffusers, netdiffusion; print('torch', torch.__version__, \
'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())" || return 1
