from reasonperf.cli import app

# The guard matters: grading runs math-verify in a spawn process pool, whose workers
# re-import the main module.
if __name__ == "__main__":
    app(prog_name="reasonperf")
