"""Write a labelled mixed-script set: Chinese (and some Japanese and Korean) technical and medical text
with Latin terms inside it (CNN, BERT, ResNet50, LoRA, GPT-4, MRI, CT, PET-CT, ECG, HbA1c, ICU,
COVID-19, Wi-Fi, API), some written full-width (ＣＴ); distractors on the same topics without the terms;
and eval.json with queries that name the terms, in Chinese, in full-width forms and on their own.

    python benchmarks/eval_mixed.py DIR && python -m assistant eval DIR/eval.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.documents import text_image  # noqa: E402

DOCS = {
    "cnn-zh.md": "# 图像分类\n\n本项目用CNN模型提取特征，再用全连接层完成分类，训练数据为十万张图片。",
    "bert-zh.md": "# 文本分类\n\n我们使用BERT模型对病历文本进行编码，然后微调分类头来识别诊断类别。",
    "resnet-zh.md": "# 骨干网络\n\n检测模型采用ResNet50作为骨干网络，输入图像缩放到224像素。",
    "lora-zh.md": "# 微调方法\n\n大模型微调使用LoRA低秩适配，只训练不到百分之一的参数。",
    "gpt4-zh.md": "# 评测结果\n\n在医学问答评测中，GPT-4的准确率为百分之八十六，高于其他模型。",
    "mri-zh.md": "# 检查准备\n\n做MRI检查前，病人需要取下所有金属物品，并在检查前四小时禁食。",
    "ct-zh.md": "# 影像检查\n\n增强ＣＴ检查前需要确认肾功能，并询问有无碘造影剂过敏史。",
    "pet-zh.md": "# 核医学\n\nPET-CT检查当天需空腹六小时，注射显像剂后安静休息一小时。",
    "ecg-zh.md": "# 心电监护\n\n住院病人每天做一次ECG，发现心律不齐立即通知值班医生。",
    "hba1c-zh.md": "# 血糖控制\n\n糖尿病病人每三个月检测一次HbA1c，目标值低于百分之七。",
    "icu-zh.md": "# 重症监护\n\nICU探视时间为每天下午三点到四点，每次只允许一名家属进入。",
    "covid-zh.md": "# 感染防控\n\n发热病人先做COVID-19抗原检测，阳性者转入隔离病房。",
    "wifi-zh.txt": "医院访客Wi-Fi名称为Guest2026，密码在一楼服务台领取。",
    "api-zh.md": "# 接口说明\n\n挂号系统提供REST API，每分钟最多调用六十次，超过后返回429错误。",
    "radiology-zh.md": "# 放射科\n\n放射科提供多种影像检查，检查前请按预约时间到达并携带检查单。",
    "training-zh.md": "# 模型训练\n\n模型训练需要大量标注数据和图形处理器算力，训练前要先清洗数据。",
    "ward-zh.md": "# 病房管理\n\n普通病房探视时间为每天下午两点到晚上八点。",
    "ct-en.md": "# CT scanner maintenance\n\nThe CT scanner in room 3 is serviced every Friday morning.",
    "mri-ja.md": "# 検査の準備\n\nMRI検査の前に、時計やアクセサリーなどの金属類をすべて外してください。",
    "ct-ko.md": "# 검사 안내\n\nCT검사 전에 신장 기능을 확인하고 조영제 알레르기 여부를 묻습니다.",
}
IMAGES = {"whiteboard-mixed.png": "MRI室 下午三点\n张医生 值班"}
QUERY_IMAGES = {"q-icu.png": "ICU探视", "q-hba1c.png": "HbA1c检测"}


def q(direction, relevant, text="", image=None, language="zh+en"):
    return {"direction": direction, "language": language, "text": text, "image": image, "relevant": relevant}


def queries() -> list[dict]:
    t2t, t2i, i2t = "text→text", "text→image", "image→text"
    return [
        q(t2t, ["cnn-zh.md"], "CNN模型用来做什么？"),
        q(t2t, ["cnn-zh.md"], "CNN"),
        q(t2t, ["bert-zh.md"], "BERT"),
        q(t2t, ["bert-zh.md"], "病历文本用BERT怎么处理"),
        q(t2t, ["resnet-zh.md"], "ResNet"),
        q(t2t, ["resnet-zh.md"], "ResNet50的输入尺寸是多少？"),
        q(t2t, ["lora-zh.md"], "LoRA微调训练多少参数？"),
        q(t2t, ["gpt4-zh.md"], "GPT-4准确率"),
        q(t2t, ["mri-zh.md", "mri-ja.md"], "MRI"),
        q(t2t, ["mri-zh.md"], "MRI检查前要准备什么？"),
        q(t2t, ["mri-zh.md", "mri-ja.md"], "ｍｒｉ"),  # full-width
        q(t2t, ["ct-zh.md"], "ＣＴ检查前需要确认什么？"),  # full-width
        q(t2t, ["ct-zh.md"], "增强CT造影剂过敏"),
        q(t2t, ["pet-zh.md"], "PET-CT要空腹多久？"),
        q(t2t, ["ecg-zh.md"], "ECG多久做一次？"),
        q(t2t, ["hba1c-zh.md"], "HbA1c目标值"),
        q(t2t, ["hba1c-zh.md"], "HbA1c"),
        q(t2t, ["icu-zh.md"], "ICU探视时间"),
        q(t2t, ["covid-zh.md"], "COVID-19阳性怎么办？"),
        q(t2t, ["wifi-zh.txt"], "访客Wi-Fi密码"),
        q(t2t, ["api-zh.md"], "API每分钟调用次数"),
        q(t2t, ["api-zh.md"], "429错误"),
        q(t2t, ["ct-en.md"], "When is the CT scanner serviced?", language="en"),
        q(t2t, ["mri-ja.md"], "MRI検査の前に何を外しますか", language="ja+en"),
        q(t2t, ["ct-ko.md"], "CT검사 전에 무엇을 확인합니까", language="ko+en"),
        q(t2i, ["whiteboard-mixed.png"], "MRI室安排"),
        q(i2t, ["icu-zh.md"], image="queries/q-icu.png"),
        q(i2t, ["hba1c-zh.md"], image="queries/q-hba1c.png"),
    ]


def write(root: Path) -> Path:
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    for name, text in IMAGES.items():
        text_image(text, docs / name)
    for name, text in QUERY_IMAGES.items():
        text_image(text, root / "queries" / name, size=(700, 160), colour="#f4f1e8")
    spec = {"documents": [f"docs/{p.name}" for p in sorted(docs.iterdir())], "queries": queries()}
    out = root / "eval.json"
    out.write_text(json.dumps(spec, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(write(Path(sys.argv[1] if len(sys.argv) > 1 else "eval-mixed")))
