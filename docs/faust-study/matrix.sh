#!/bin/bash
# Runs variants 3x sequentially (ordered by priority); results appended to results.jsonl
cd /tmp/faust-study
BIG='{"broker_max_poll_records": 10000, "stream_buffer_maxsize": 16384, "consumer_max_fetch_size": 16777216, "stream_wait_empty": false, "broker_commit_every": 100000}'
PATCH=drain,idlesleep LABEL=faust_agent_patch_drain_idlesleep ./run3.sh faust_bench.py
PATCH=drain LABEL=faust_agent_patch_drain ./run3.sh faust_bench.py
PATCH=idlesleep LABEL=faust_agent_patch_idlesleep ./run3.sh faust_bench.py
SETTINGS="$BIG" LABEL=faust_agent_bigsettings ./run3.sh faust_bench.py
LABEL=faust_task_raw_aiokafka ./run3.sh faust_service_raw.py
MODE=topicstream LABEL=faust_task_topic_stream ./run3.sh faust_bench.py
N=50000 MODE=table LABEL=faust_table_per_event_N50k ./run3.sh faust_bench.py
N=50000 MODE=table PATCH=drain,idlesleep LABEL=faust_table_per_event_patched_N50k ./run3.sh faust_bench.py
MODE=take TAKE=1000 WITHIN=0.5 LABEL=faust_take1000 ./run3.sh faust_bench.py
PATCH=drain,idlesleep MODE=take TAKE=1000 WITHIN=0.5 LABEL=faust_take1000_patched ./run3.sh faust_bench.py
MODE=noack LABEL=faust_noack ./run3.sh faust_bench.py
echo MATRIX DONE
