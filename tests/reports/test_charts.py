"""Chart labels stay readable when variants sit close together."""

from __future__ import annotations

from optkit.reports.charts import _label_points, _pyplot


def test_labels_of_nearly_equal_points_do_not_overlap() -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    named = {  # two int8 flavours and their fp32 parents at nearly the same place, as in real reports
        "int8-static (front)": (23.7, 0.8294),
        "int8-dynamic": (23.9, 0.8293),
        "fp32-onnx": (23.8, 0.8290),
        "baseline": (24.0, 0.8290),
    }
    ax.scatter(*zip(*named.values(), strict=True))
    ax.margins(x=0.25, y=0.25)
    fig.tight_layout()
    _label_points(fig, ax, named)
    renderer = fig.canvas.get_renderer()
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts}
    plt.close(fig)
    assert sorted(boxes) == sorted(named)
    names = list(boxes)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not boxes[a].overlaps(boxes[b]), (a, b)
