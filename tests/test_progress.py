import io

from medviz.progress import printed_progress


def _lines(progress_calls, **options):
    out = io.StringIO()
    say = printed_progress("[job] images", file=out, **options)
    for done, total in progress_calls:
        say(done, total)
    return [line.split(" (")[0] for line in out.getvalue().splitlines()], out.getvalue()


def test_progress_prints_each_tenth_once_and_the_end_once():
    lines, text = _lines([(done, 95) for done in range(1, 96)] + [(95, 95)])
    assert lines == [f"[job] images: {done}/95" for done in (10, 19, 29, 38, 48, 57, 67, 76, 86, 95)]
    assert text.splitlines()[0].endswith(" s)")


def test_progress_every_n_prints_its_multiples_and_the_end():
    lines, _ = _lines([(done, 45) for done in range(5, 46, 5)], every=20)
    assert lines == ["[job] images: 20/45", "[job] images: 40/45", "[job] images: 45/45"]
    lines, _ = _lines([(7, 3)])                   # an overshoot is an end, said once
    assert lines == ["[job] images: 7/3"]
