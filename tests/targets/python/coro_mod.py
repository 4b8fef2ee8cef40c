# A coroutine parked while being run by hand (send), for stacks_target.py.
# Kept in its own file because `async def` does not parse on Python 2.7.


async def parked_coroutine():
    arrive()
    time.sleep(1000000)  # BLOCKS


def run_coroutine():
    coro = parked_coroutine()
    try:
        coro.send(None)
    finally:
        coro.close()
