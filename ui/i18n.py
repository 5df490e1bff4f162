"""Every label of the interface in English and Chinese. Gradio picks the browser's language; the
Settings panel in the footer switches it."""

from __future__ import annotations

import re

TRANSLATIONS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Multimodal assistant",
        "language_hint": "The language follows your browser; switch it under Settings at the bottom of the page.",
        "tab_chat": "Chat",
        "tab_kb": "Knowledge base",
        "chat_label": "Chat",
        "chat_placeholder": "Ask about an image, or your documents…",
        "settings": "Settings",
        "temperature": "Temperature",
        "max_tokens": "Max new tokens",
        "num_sources": "Number of sources",
        "use_kb": "Use the knowledge base",
        "strict": "Strict grounding (answer only from documents)",
        "sources": "Sources",
        "examples": "Examples",
        "add_documents": "Add documents",
        "add_button": "Add to knowledge base",
        "documents": "Documents",
        "document": "Document",
        "delete": "Delete",
        "search": "Search",
        "search_text": "Text",
        "search_image": "Image",
        "results": "Results",
        "hits": "Hits",
        "col_document": "Document",
        "col_kind": "Kind",
                "conversations": "Conversations",
        "new_conversation": "New conversation",
        "conversation_title": "Title",
        "rename": "Rename",
        "delete_conversation": "Delete conversation",
        "send": "Send",
        "stop": "Stop",
        "knowledge_base": "Knowledge base",
        "kb_name": "Name (new, or the new name)",
        "kb_create": "New knowledge base",
        "kb_rename": "Rename",
        "kb_delete": "Delete knowledge base",
        "kb_delete_confirm": "Yes, delete it and all its documents",
        "cancel": "Cancel",
        "kb_used": "Search in",
        "filter": "Filter by name",
        "filter_placeholder": "Part of a file name",
        "search_placeholder": "Words to find; press Enter",
        "col_extent": "Pages or passages",
        "col_size": "Size",
        "col_added": "Added",
        "medical_banner": "**Medical pilot mode.** Answers are not a diagnosis: check them against their sources, "
                          "and leave clinical decisions to a qualified clinician. Actions here are recorded in an "
                          "audit log.",
    },
    "zh": {
        "title": "多模态助手",
        "language_hint": "界面语言跟随浏览器；可在页面底部的“设置”中切换。",
        "tab_chat": "对话",
        "tab_kb": "知识库",
        "chat_label": "对话",
        "chat_placeholder": "询问图片或您的文档…",
        "settings": "设置",
        "temperature": "温度",
        "max_tokens": "最大生成长度",
        "num_sources": "资料条数",
        "use_kb": "使用知识库",
        "strict": "严格依据模式（只根据文档回答）",
        "sources": "资料来源",
        "examples": "示例",
        "add_documents": "添加文档",
        "add_button": "加入知识库",
        "documents": "文档",
        "document": "文档",
        "delete": "删除",
        "search": "检索",
        "search_text": "文本",
        "search_image": "图片",
        "results": "结果数",
        "hits": "命中",
        "col_document": "文档",
        "col_kind": "类型",
                "conversations": "会话",
        "new_conversation": "新会话",
        "conversation_title": "标题",
        "rename": "重命名",
        "delete_conversation": "删除会话",
        "send": "发送",
        "stop": "停止",
        "knowledge_base": "知识库",
        "kb_name": "名称（新建或重命名）",
        "kb_create": "新建知识库",
        "kb_rename": "重命名",
        "kb_delete": "删除知识库",
        "kb_delete_confirm": "确认删除该知识库及其全部文档",
        "cancel": "取消",
        "kb_used": "检索范围",
        "filter": "按名称筛选",
        "filter_placeholder": "文件名的一部分",
        "search_placeholder": "要查找的词语；按回车检索",
        "col_extent": "页数或段落数",
        "col_size": "大小",
        "col_added": "添加时间",
        "medical_banner": "**医疗试点模式。** 回答不是诊断：请对照所引用的资料核实，临床决定须由有资质的临床医生作出。"
                          "此处的操作均记录在审计日志中。",
    },
}


# What the server writes (reports, notices, status): in the browser's language, from its Accept-Language.
# Errors raised deeper in the product keep their English detail.
SERVER: dict[str, dict[str, str]] = {
    "en": {
        "loading": "The model is still loading; your answer will start when it is ready.",
        "stopped": "Stopped before the answer was complete.",
        "choose_files": "Choose one or more files first.",
        "choose_document": "Choose a document to delete.",
        "deleted_document": "Deleted {name} ({chunks} passages).",
        "ask_delete_document": "Delete **{name}** from this knowledge base?",
        "search_empty": "Type words to search for, or add an image.",
        "no_hits": "Nothing found.",
        "created": "Created {title}.",
        "renamed": "Renamed to {title}.",
        "ask_delete_base": "Delete **{title}** and {what}? This cannot be undone.",
        "its_documents": "its {count} documents",
        "its_document": "its document",
        "deleted_base": "Deleted {title} and its documents.",
        "shared_readonly": "The shared library: everyone can search it and ask about it; an administrator adds "
                           "and deletes its documents.",
        "shared_admin": "The shared library: what you add here every user can read.",
        "guest": "Guest · your documents and conversations are private and deleted after {minutes} minutes unused",
        "sign_out": "Sign out",
        "files_in_kb": "{ok} of {total} files in the knowledge base.",
        "added": "added", "replaced": "replaced", "unchanged": "unchanged", "failed": "failed",
        "passages": "passages", "pages": "pages", "passage": "passage", "page": "page",
        "ready": "ready", "loading_state": "loading", "idle": "waiting", "colon": ": ",
        "model": "model", "knowledge base": "knowledge base", "shared library": "shared library",
        "embedders": "embedders", "parse workers": "parse workers",
        "Text": "Text", "Markdown": "Markdown", "PDF": "PDF", "Web page": "Web page", "Word": "Word",
        "Image": "Image",
        "export": "Export", "JSON": "JSON", "ZIP with images": "ZIP with images",
        "answers": "Answers from", "terms": "Terms of this model", "local folder": "a local folder",
        "agreement": "Image agreement {score}",
        "agreement_title": "How well the answer agrees with the images it is about (yours and the pictures it "
                           "cites), in the embedder's shared image and text space: the share of unrelated captions "
                           "it beats, 0 to 1; 0.5 is no better than an unrelated caption.",
        "your_image": "your image {n}", "cited_picture": "source [{n}]",
        "may_not_match": "This answer may not match the image.",
        "medical_note": "Not a diagnosis. Check it against the sources and with a clinician.",
    },
    "zh": {
        "loading": "模型仍在加载；加载完成后将开始回答。",
        "stopped": "回答未完成即已停止。",
        "choose_files": "请先选择一个或多个文件。",
        "choose_document": "请选择要删除的文档。",
        "deleted_document": "已删除 {name}（{chunks} 个段落）。",
        "ask_delete_document": "要从此知识库删除 **{name}** 吗？",
        "search_empty": "请输入要查找的词语，或添加一张图片。",
        "no_hits": "没有找到结果。",
        "created": "已创建 {title}。",
        "renamed": "已重命名为 {title}。",
        "ask_delete_base": "要删除 **{title}** 及{what}吗？此操作无法撤销。",
        "its_documents": "其中的 {count} 个文档",
        "its_document": "其中的文档",
        "deleted_base": "已删除 {title} 及其文档。",
        "shared_readonly": "共享资料库：所有人都可以检索和提问；文档由管理员添加和删除。",
        "shared_admin": "共享资料库：您在此添加的内容所有用户都可以读取。",
        "guest": "访客 · 您的文档和会话仅自己可见，闲置 {minutes} 分钟后删除",
        "sign_out": "退出登录",
        "files_in_kb": "{total} 个文件中有 {ok} 个已在知识库中。",
        "added": "已添加", "replaced": "已替换", "unchanged": "未变化", "failed": "失败",
        "passages": "个段落", "pages": "页", "passage": "个段落", "page": "页",
        "ready": "就绪", "loading_state": "加载中", "idle": "等待中", "colon": "：",
        "model": "模型", "knowledge base": "知识库", "shared library": "共享资料库",
        "embedders": "嵌入模型", "parse workers": "解析进程",
        "Text": "文本", "Markdown": "Markdown", "PDF": "PDF", "Web page": "网页", "Word": "Word 文档",
        "Image": "图片",
        "My documents": "我的文档", "Shared library": "共享资料库",
        "export": "导出", "JSON": "JSON", "ZIP with images": "ZIP（含图片）",
        "answers": "回答模型", "terms": "此模型的使用条款", "local folder": "本地文件夹",
        "agreement": "图文一致度 {score}",
        "agreement_title": "回答与其所涉及的图片（您的图片和回答引用的图片）在图文共享向量空间中的一致程度：回答胜过的"
                           "无关描述所占比例，0 到 1；0.5 表示与无关描述相当。",
        "your_image": "您的图片 {n}", "cited_picture": "资料 [{n}]",
        "may_not_match": "此回答可能与图片不符。",
        "medical_note": "此回答不是诊断。请对照资料来源并咨询临床医生核实。",
    },
}


def language(request) -> str:
    """``zh`` when the browser's first choice is Chinese (its Accept-Language header), else ``en``."""
    headers = getattr(request, "headers", None) or {}
    first = (headers.get("accept-language") or "").split(",")[0].strip().lower()
    return "zh" if first.startswith("zh") else "en"


def say(lang: str, key: str, **values) -> str:
    """A server message in ``lang`` (English when it has no translation)."""
    text = SERVER.get(lang, {}).get(key) or SERVER["en"].get(key, key)
    return text.format(**values) if values else text


def words(lang: str):
    """``say`` bound to one language, for the render helpers."""
    return lambda key, **values: say(lang, key, **values)


def column_headers(lang: str) -> list[str]:
    keys = ("col_document", "col_kind", "col_extent", "col_size", "col_added")
    return [TRANSLATIONS.get(lang, TRANSLATIONS["en"])[k] for k in keys]


def make_i18n():
    import gradio as gr

    return gr.I18n(**TRANSLATIONS)


# The product's own error messages, in Chinese. The English text is the message as raised (one wording per
# problem, see retrieval/errors.py); a message about a file is "<name>: <problem>" and keeps its name. A
# message not listed here (an administrator's configuration problem, a library's detail) stays English.
_PROBLEMS_ZH: list[tuple[str, str]] = [
    (r"the file is empty", "文件为空"),
    (r"not a readable image \(the file is damaged, incomplete, or not an image\)",
     "不是可读取的图片（文件已损坏、不完整或并非图片）"),
    (r"unsupported file type '(?P<suffix>[^']*)'; supported: (?P<supported>.+)",
     "不支持的文件类型“{suffix}”；支持的类型：{supported}"),
    (r"this image is too large to open \((?P<mp>[\d,]+) megapixels; the limit is (?P<limit>[\d,]+) .*\)",
     "图片过大，无法打开（{mp} 百万像素，上限为 {limit} 百万像素）"),
    (r"the file is too large \((?P<size>[\d,]+) MB; the limit is (?P<limit>[\d,]+) MB\)",
     "文件过大（{size} MB，上限为 {limit} MB）"),
    (r"the file is no longer there; add it again", "文件已不存在，请重新添加"),
    (r"the file cannot be read \((?P<detail>.*)\)", "无法读取文件（{detail}）"),
    (r"an embedded image is empty", "文档中嵌入的一张图片为空"),
    (r"an embedded image is unreadable \((?P<detail>.*)\)", "文档中嵌入的一张图片无法读取（{detail}）"),
    (r"this is (?P<what>.+), not text; give it its real extension", "这是 {what}，不是文本；请使用它真实的扩展名"),
    (r"the file contains no text", "文件中没有文本"),
    (r"not valid UTF-16 text \(byte (?P<byte>\d+)\)", "不是有效的 UTF-16 文本（第 {byte} 字节）"),
    (r"binary data, not text", "这是二进制数据，不是文本"),
    (r"not text in any encoding recognised; save it as UTF-8", "无法识别文本的编码；请另存为 UTF-8"),
    (r"the PDF is encrypted; remove the password and try again", "PDF 已加密；请移除密码后重试"),
    (r"not a readable PDF \((?P<detail>.*)\)", "不是可读取的 PDF（{detail}）"),
    (r"(?P<pages>\d+) pages is over the limit of (?P<limit>\d+) \((?P<var>\w+)\)",
     "共 {pages} 页，超过了 {limit} 页的上限（{var}）"),
    (r"the PDF has no text and no pages that render", "PDF 中既没有文本，也没有可以渲染的页面"),
    (r"not readable HTML \((?P<detail>.*)\)", "不是可读取的 HTML（{detail}）"),
    (r"no readable text in the page", "网页中没有可读取的文本"),
    (r"not a readable Word document \((?P<detail>.*)\)", "不是可读取的 Word 文档（{detail}）"),
    (r"the document has no text and no images", "文档中既没有文本也没有图片"),
    (r"nothing to index \(no text, no images\)", "没有可以索引的内容（没有文本，也没有图片）"),
    (r"only images can be attached in the chat; add documents in the Knowledge base tab",
     "对话中只能附加图片；文档请在“知识库”标签页中添加"),
]

_MESSAGES_ZH: list[tuple[str, str]] = [
    (r"Type a question or add an image\.", "请输入问题或添加图片。"),
    (r"Sign in first\.", "请先登录。"),
    (r"Sign in with Hugging Face first \(the button at the top\)\.", "请先使用 Hugging Face 登录（页面顶部的按钮）。"),
    (r"This account no longer exists; sign out\.", "此账户已不存在；请退出登录。"),
    (r"The app is shutting down\.", "应用正在关闭。"),
    (r"A knowledge base needs a name\.", "知识库需要一个名称。"),
    (r"A knowledge base's name can have at most (?P<most>\d+) characters \((?P<given>\d+) given\)\.",
     "知识库名称最多 {most} 个字符（现有 {given} 个）。"),
    (r"There is no knowledge base '(?P<name>.*)'\. Yours: (?P<yours>.*)\.",
     "没有名为“{name}”的知识库。您的知识库：{yours}。"),
    (r"There is no knowledge base '(?P<name>.*)'\.", "没有知识库“{name}”。"),
    (r"'(?P<name>.*)' is not a knowledge base id", "“{name}”不是知识库的 ID"),
    (r"At most (?P<most>\d+) knowledge bases: delete one first\.", "最多只能有 {most} 个知识库：请先删除一个。"),
    (r"You already have a knowledge base called '(?P<name>.*)'\.", "您已经有一个名为“{name}”的知识库。"),
    (r"'(?P<name>.*)' is the shared library's name: choose another\.", "“{name}”是共享资料库的名称：请换一个名称。"),
    (r"The first knowledge base cannot be deleted: delete its documents, or rename it\.",
     "第一个知识库不能删除：可以删除其中的文档，或为它重命名。"),
    (r"The shared library is managed by an administrator\.", "共享资料库由管理员管理。"),
    (r"The shared library keeps its name\.", "共享资料库的名称不能修改。"),
    (r"This app has one knowledge base per user\.", "此应用中每位用户只有一个知识库。"),
    (r"There is no shared library here \(it exists when users sign in\)\.", "这里没有共享资料库（用户登录时才有）。"),
    (r"Only an administrator can add documents to the shared library or delete them; you can search it and "
     r"ask about it\.", "只有管理员可以向共享资料库添加或删除文档；您可以检索它并就其内容提问。"),
    (r"No document with id or name '(?P<doc>.*)' in the knowledge base", "知识库中没有 ID 或名称为“{doc}”的文档"),
    (r"'(?P<doc>.*)' names (?P<count>\d+) documents; give one of their ids: (?P<ids>.*)",
     "“{doc}”对应 {count} 个文档；请给出其中一个 ID：{ids}"),
    (r"The knowledge base is turned off \((?P<var>[^)]*)\)\.", "知识库已关闭（{var}）。"),
    (r"The knowledge base has been closed \(the app is shutting down\)\.", "知识库已关闭（应用正在关闭）。"),
    (r"Knowledge base unavailable: (?P<detail>.*)", "知识库不可用：{detail}"),
    (r"A conversation's title cannot be empty\.", "会话标题不能为空。"),
    (r"A conversation's title can have at most (?P<most>\d+) characters \((?P<given>\d+) given\)\.",
     "会话标题最多 {most} 个字符（现有 {given} 个）。"),
    (r"There is no such conversation \(it may have been deleted\)\.", "没有这个会话（它可能已被删除）。"),
    (r"This conversation has no such image \(it may have been deleted\)\.", "此会话中没有这张图片（它可能已被删除）。"),
    (r"That is not a reference to an image of this conversation\.", "这不是此会话中图片的引用。"),
    (r"Only images can be kept in a conversation \((?P<name>.*)\)\.", "会话中只能保存图片（{name}）。"),
    (r"The image (?P<name>.*) cannot be read \((?P<detail>.*)\)\.", "图片 {name} 无法读取（{detail}）。"),
    (r"Ask something first: a new conversation has nothing to rename yet\.", "请先提问：新会话还没有可以重命名的内容。"),
    (r"The model server at (?P<url>\S+) did not answer in time\.", "模型服务器 {url} 未能及时响应。"),
    (r"The (?P<what>model|embedding model|text embedding model) '(?P<name>[^']+)' is not in the local Hugging "
     r"Face cache, and it cannot be downloaded now \((?P<why>[^)]*)\)\. Three ways on: `make demo` serves the app "
     r"with tiny offline models; `python -m assistant download` on a machine with network fills its Hugging Face "
     r"cache \(~/\.cache/huggingface\), which you then copy to this one; or set ASSISTANT_OFFLINE=true and "
     r"(?P<variable>\w+) to a local folder holding the model\.",
     "{what_zh}“{name}”不在本机的 Hugging Face 缓存中，现在也无法下载（{why}）。三种办法：`make demo` 用离线的微型"
     "模型启动本应用；在有网络的机器上运行 `python -m assistant download` 填充其 Hugging Face 缓存"
     "（~/.cache/huggingface），再复制到本机；或设置 ASSISTANT_OFFLINE=true，并把 {variable} 设为存放该模型的本地文件夹。"),
]
_WHAT_ZH = {"model": "模型", "embedding model": "嵌入模型", "text embedding model": "文本嵌入模型"}

_COMPILED: dict[str, list[tuple[re.Pattern, str]]] = {}


def _table(rows: list[tuple[str, str]]) -> list[tuple[re.Pattern, str]]:
    return [(re.compile(pattern + r"\Z", re.S), template) for pattern, template in rows]


def explain(lang: str, message: str) -> str:
    """The product's error ``message`` in ``lang``: Chinese where it is one of the product's own (a file's
    name kept as it is), otherwise as it was raised."""
    if lang != "zh" or not message:
        return message
    if not _COMPILED:
        _COMPILED.update(problems=_table(_PROBLEMS_ZH), messages=_table(_MESSAGES_ZH))
    for pattern, template in _COMPILED["messages"]:
        if m := pattern.match(message):
            values = m.groupdict()
            return template.format(**values, what_zh=_WHAT_ZH.get(values.get("what", ""), ""))
    for pattern, template in _COMPILED["problems"]:  # the problem alone (a report line names the file)
        if m := pattern.match(message):
            return template.format(**m.groupdict())
    names = [i for i in range(len(message)) if message.startswith(": ", i)]
    for cut in names:  # "<name>: <problem>", the name possibly holding ": " itself
        for pattern, template in _COMPILED["problems"]:
            if m := pattern.match(message, cut + 2):
                return f"{message[:cut]}：{template.format(**m.groupdict())}"
    return message
