from assistant.grounding import Box, parse_boxes


def test_fenced_json_list():
    text = 'Here:\n```json\n[\n {"bbox_2d": [10, 20, 110, 220], "label": "red circle"},\n' \
           ' {"bbox_2d": [300, 40, 400, 140], "label": "blue square"}\n]\n```'
    assert parse_boxes(text) == [Box("red circle", 10, 20, 110, 220), Box("blue square", 300, 40, 400, 140)]


def test_bare_objects_and_duplicates():
    text = 'a {"bbox_2d": [1, 2, 3, 4], "label": "x"} b {"bbox_2d": [1, 2, 3, 4], "label": "x"}'
    assert parse_boxes(text) == [Box("x", 1, 2, 3, 4)]


def test_invalid_boxes_are_ignored():
    text = ('{"bbox_2d": [5, 5, 1, 1], "label": "inverted"} {"bbox_2d": [1, 2, 3], "label": "short"} '
            '{"bbox_2d": "nope"} {"label": "no box"} [1, 2, 3, 4] not json {')
    assert parse_boxes(text) == []


def test_no_label_is_allowed():
    assert parse_boxes('[{"bbox_2d": [0, 0, 10, 10]}]') == [Box("", 0, 0, 10, 10)]
