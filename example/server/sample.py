"""The sample job: prints a line a second for ten seconds and writes a few files."""

SAMPLE_PROGRAM = """\
import sys
import time

for i in range(1, 11):
    print(f"Line {i} of 10", flush=True)
    with open(f"django_remote_submission_example_out_{i}.txt", "w") as out:
        out.write(f"Line {i}\\n")
    if i % 5 == 0:
        print(f"checkpoint {i}: all is well (this line is on stderr)", file=sys.stderr, flush=True)
    time.sleep(1)

with open("summary.csv", "w") as summary:
    summary.write("line,square\\n")
    for i in range(1, 11):
        summary.write(f"{i},{i * i}\\n")
print("Done: wrote 10 text files and summary.csv")
"""
