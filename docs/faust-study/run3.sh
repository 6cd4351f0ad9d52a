#!/bin/bash
# usage: run3.sh <script.py>   (env vars MODE/LABEL/SETTINGS/... pass through); runs 3x, prints RESULT lines
cd /tmp/faust-study
for i in 1 2 3; do
  timeout 300 .venv/bin/python "$@" 2>&1 | grep -a -o 'RESULT .*' || echo "RUN FAILED"
done
