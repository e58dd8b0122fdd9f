"""Language consistency without a judge: which script a reply is in, and whether it is the one the user needs.

Script labels: "zh-Hant" (Traditional Chinese), "zh-Hans" (Simplified Chinese), "zh" (Chinese whose script cannot
be told: no or as many Traditional-only as Simplified-only characters; compatible with both), "en" (Latin script),
"other" (another script dominates, e.g. Japanese kana, Hangul, Cyrillic) and "empty" (no letters at all once code,
URLs, digits and punctuation are removed).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

# Common simplified/traditional pairs ("简繁") whose simplified form is not used in Traditional text and whose
# traditional form is not used in Simplified text. Ambiguous ones (后/後, 里/裡, 干/乾, 只/隻, 台/臺, 面/麵, ...)
# contribute only their Traditional-only side, in _TRADITIONAL_EXTRA.
_PAIRS = """
这這 们們 说說 时時 会會 来來 对對 发發 经經 过過 还還 没沒 样樣 为為 国國 学學 问問 见見 实實 现現 应應 气氣 长長 开開
关關 动動 东東 车車 书書 语語 话話 门門 间間 体體 电電 认認 让讓 给給 请請 谢謝 个個 吗嗎 进進 种種 从從 两兩 无無 机機
产產 业業 头頭 员員 么麼 与與 万萬 专專 丛叢 丝絲 乐樂 买買 卖賣 亲親 亿億 仅僅 众眾 优優 伤傷 伦倫 伟偉 传傳 论論 设設
访訪 证證 识識 诉訴 词詞 译譯 试試 诗詩 该該 详詳 误誤 读讀 谁誰 调調 谈談 课課 谓謂 处處 备備 够夠 奋奮 妇婦 妈媽 婴嬰
孙孫 宝寶 审審 宪憲 宫宮 寻尋 导導 将將 层層 岁歲 岛島 帅帥 师師 带帶 帮幫 库庫 庆慶 废廢 异異 张張 弹彈 强強 归歸 当當
录錄 彻徹 忆憶 态態 怀懷 总總 恋戀 恶惡 悬懸 惊驚 惯慣 战戰 户戶 扩擴 执執 扫掃 扬揚 护護 报報 担擔 拥擁 择擇 换換 损損
摄攝 摆擺 数數 敌敵 断斷 旧舊 显顯 晓曉 暂暫 杀殺 杂雜 权權 条條 极極 构構 枪槍 标標 树樹 桥橋 梦夢 检檢 欢歡 欧歐 残殘
毕畢 汉漢 汤湯 沟溝 泽澤 洁潔 浅淺 测測 济濟 浓濃 涨漲 温溫 湾灣 满滿 灭滅 灯燈 灵靈 炼煉 热熱 爱愛 爷爺 牵牽 状狀 独獨
猎獵 献獻 环環 画畫 畅暢 疗療 积積 称稱 稳穩 穷窮 竞競 笔筆 节節 简簡 类類 练練 组組 细細 织織 终終 结結 绝絕 统統 继繼
绩績 续續 维維 综綜 绿綠 缘緣 编編 网網 罗羅 职職 联聯 肃肅 肠腸 脑腦 脚腳 举舉 艺藝 药藥 获獲 虑慮 虽雖 补補 装裝 观觀
规規 视視 览覽 觉覺 计計 订訂 讨討 训訓 议議 记記 讲講 许許 评評 诚誠 询詢 诸諸 谱譜 贝貝 负負 财財 责責 败敗 货貨 质質
购購 贵貴 费費 贸貿 资資 赛賽 赞贊 赶趕 践踐 轨軌 转轉 轮輪 软軟 轻輕 载載 较較 辆輛 辑輯 输輸 边邊 达達 迁遷 运運 远遠
连連 迟遲 选選 递遞 遗遺 邮郵 邻鄰 郑鄭 释釋 钟鐘 钢鋼 钱錢 铁鐵 银銀 错錯 键鍵 镇鎮 闭閉 闲閒 闻聞 阅閱 队隊 阳陽 阴陰
阶階 际際 陆陸 险險 随隨 隐隱 难難 雾霧 静靜 顶頂 项項 顺順 须須 顾顧 预預 领領 频頻 题題 额額 风風 飞飛 饭飯 饮飲 马馬
驾駕 验驗 鱼魚 鸟鳥 鸡雞 麦麥 黄黃 齐齊 龙龍 汇匯 压壓 厅廳 历歷 厂廠 县縣 参參 双雙 变變 号號 叹嘆 听聽 启啟 响響 团團
园園 围圍 图圖 圆圓 场場 坏壞 块塊 坚堅 坛壇 声聲 壳殼 夺奪 奖獎 宽寬 尔爾 尘塵 尽盡 属屬 币幣 帐帳 弯彎 忧憂 恳懇 愤憤
懒懶 戏戲 扑撲 抢搶 挡擋 挤擠 挥揮 捡撿 掷擲 搅攪 携攜 摊攤 昼晝 晒曬 杨楊 枣棗 档檔 楼樓 横橫 毁毀 泪淚 洒灑 渐漸 渔漁
湿濕 滚滾 滞滯 灾災 炉爐 点點 烟煙 烦煩 烧燒 焕煥 牺犧 犹猶 狮獅 猫貓 琐瑣 亩畝 疯瘋 盐鹽 监監 盖蓋 盘盤 睁睜 矿礦 码碼
础礎 确確 礼禮 祸禍 离離 窃竊 竖豎 笼籠 签簽 粮糧 紧緊 纠糾 红紅 约約 级級 纪紀 纯純 纸紙 纹紋 线線 绍紹 绑綁 络絡 缓緩
缩縮 罚罰 罢罷 习習 耸聳 聪聰 肤膚 肿腫 胆膽 舰艦 艰艱 苍蒼 营營 蓝藍 触觸 讯訊 诊診 诞誕 诺諾 谅諒 谋謀 谜謎 谣謠 谦謙
谨謹 贡貢 贤賢 账賬 贩販 贪貪 贫貧 贯貫 贴貼 贷貸 贺賀 赌賭 赏賞 赔賠 赖賴 赚賺 赠贈 赵趙 趋趨 跃躍 踪蹤 轰轟 辅輔 辈輩
辉輝 辞辭 迈邁 违違 逻邏 酱醬 钓釣 铜銅 铺鋪 链鏈 销銷 锁鎖 锅鍋 锋鋒 镜鏡 闪閃 闹鬧 阁閣 阵陣 陈陳 韩韓 页頁 顽頑 顿頓
颁頒 颗顆 颜顏 飘飄 饱飽 饰飾 饼餅 馆館 驱驅 驶駛 驻駐 骂罵 骑騎 骗騙 鲜鮮 鸣鳴 鸭鴨 齿齒 龄齡 龟龜 亚亞 仓倉 仪儀 伞傘
侦偵 侧側 俭儉 债債 倾傾 储儲 兰蘭 兴興 养養 兽獸 册冊 写寫 军軍 农農 决決 况況 冻凍 净淨 凉涼 减減 凤鳳 凭憑 击擊 刘劉
则則 刚剛 创創 删刪 别別 剂劑 剑劍 剧劇 办辦 务務 劝勸 势勢 区區 医醫 华華 协協 单單 卢盧 卫衛 却卻 厉厲 厌厭 叙敘 吓嚇
吴吳 呜嗚 唤喚 喷噴 嘱囑 圣聖 墙牆 壮壯 壶壺 夹夾 奥奧 娱娛 宠寵 宾賓 寿壽 尝嘗 届屆 岂豈 岭嶺 庙廟 弃棄 径徑 怜憐 恼惱
悦悅 惧懼 惨慘 扰擾 抚撫 抛拋 拟擬 拦攔 拨撥 挣掙 摇搖 撑撐 斋齋 斩斬 晋晉 柜櫃 栏欄 欧歐 歼殲 沪滬 泼潑 浏瀏 润潤 滤濾
滥濫 滨濱 烂爛 狭狹 狱獄 猪豬 玛瑪 盗盜 砖磚 税稅 篮籃 纤纖 纲綱 纳納 纵縱 纷紛 纺紡 纽紐 绕繞 绘繪 绪緒 绳繩 缝縫 缴繳
义義 耻恥 肾腎 胀脹 胶膠 脉脈 脸臉 舱艙 荣榮 莲蓮 虚虛 虾蝦 蚁蟻 乡鄉 乱亂 争爭 亏虧 伪偽 侨僑 俩倆 偿償 儿兒 凑湊 励勵
劲勁 劳勞 卧臥 厨廚 叠疊 咏詠 垫墊 夸誇 娇嬌 蚂螞 裤褲 誉譽 袜襪 虏虜 邓鄧 钥鑰 锦錦 闯闖 骚騷 鸭鴨 鹰鷹 齿齒 龄齡
"""
# Traditional-only characters whose simplified counterpart is also an ordinary Traditional character.
_TRADITIONAL_EXTRA = (
    "爲衆啓僞溼後裡裏於隻臺颱檯雲麵鬆範醜穀髮鬥製幹餘齣衝複鐘鍾準據築註誌撲捲闆豐幾採塗鬍湧莊掛佔週託係繫"
)

_PAIR_LIST = tuple(dict.fromkeys(_PAIRS.split()))
SIMPLIFIED_ONLY = frozenset(pair[0] for pair in _PAIR_LIST)
TRADITIONAL_ONLY = frozenset(pair[1] for pair in _PAIR_LIST) | frozenset(_TRADITIONAL_EXTRA)
assert all(len(pair) == 2 for pair in _PAIR_LIST) and not SIMPLIFIED_ONLY & TRADITIONAL_ONLY

CHINESE = ("zh-Hant", "zh-Hans", "zh")
MIN_LETTERS = 4  # is_consistent does not judge a reply with fewer letters + Han characters ("OK", "42", "x = 2")
HAN_SHARE = 0.3  # Han characters at least this share of all letters + Han: the text is Chinese
OTHER_SHARE = 0.2  # letters of another script (kana, Hangul, Cyrillic, ...) at least this share: not Chinese

_FENCE = re.compile(r"```.*?(?:```|\Z)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_URL = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+", re.I)


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x3134F
        or 0xF900 <= code <= 0xFAFF
        or 0x3100 <= code <= 0x312F
        or 0x31A0 <= code <= 0x31BF
    )  # + bopomofo


def script_counts(text: str) -> dict[str, int]:
    """Counts of Han, Latin and other letters, and of Traditional-/Simplified-only characters, outside code/URLs."""
    text = unicodedata.normalize("NFKC", text or "")
    text = _URL.sub(" ", _INLINE_CODE.sub(" ", _FENCE.sub(" ", text)))
    counts = {"han": 0, "latin": 0, "other": 0, "traditional": 0, "simplified": 0}
    for ch in text:
        if _is_han(ch):
            counts["han"] += 1
            counts["traditional"] += ch in TRADITIONAL_ONLY
            counts["simplified"] += ch in SIMPLIFIED_ONLY
        elif ch.isalpha():
            counts["latin" if ord(ch) < 0x250 else "other"] += 1
    return counts


def _script_from_counts(counts: dict[str, int]) -> str:
    total = counts["han"] + counts["latin"] + counts["other"]
    if total == 0:
        return "empty"
    if counts["han"] >= HAN_SHARE * total and counts["other"] < OTHER_SHARE * total:
        if counts["traditional"] > counts["simplified"]:
            return "zh-Hant"
        if counts["simplified"] > counts["traditional"]:
            return "zh-Hans"
        return "zh"
    if counts["latin"] >= 0.5 * total:
        return "en"
    return "other"


def detect_script(text: str) -> str:
    """The script `text` is written in: "zh-Hant", "zh-Hans", "zh", "en", "other" or "empty" (see the module doc)."""
    return _script_from_counts(script_counts(text))


_ZH_VERBS = (
    r"(?:請|请)?(?:用|以|使用|改用|採用|采用|換成|换成|翻譯成|翻译成|翻譯為|翻译为|譯成|译成|譯為|译为|翻成|"
    r"轉成|转成|轉換成|转换成|轉為|转为|寫成|写成|改寫成|改写成)\s*"
)
_ZH_TARGETS = {
    "繁體中文|繁体中文|正體中文|正体中文|繁體字|繁体字|繁體|繁体|繁中": "zh-Hant",
    "簡體中文|简体中文|簡體字|简体字|簡體|简体|簡中|简中": "zh-Hans",
    "英文|英語|英语": "en",
    "中文|漢語|汉语|華語|华语|國語|国语": "zh",
}
_ZH_REQUEST = re.compile(_ZH_VERBS + "(" + "|".join(_ZH_TARGETS) + r")(?!\s*(?:怎|要怎|該怎|该怎|如何|是什|叫什))")
_EN_TARGET = r"(?:(traditional|simplified)\s+)?(english|chinese|mandarin)\b"
_EN_REQUEST = re.compile(
    r"\b(?:answer|respond|reply|write|translate|explain|rewrite|summari[sz]e|describe|response|speak|talk)\b"
    r"[^.?!\n]{0,40}?\b(?:in|into|to|using)\s+"
    + _EN_TARGET
    + r"|\b(?:please\s+)?(?:use|using)\s+"
    + _EN_TARGET
    + r"|\bin\s+"
    + _EN_TARGET
    + r"\s*(?:only|please)\b",
    re.I,
)


def _zh_target(word: str) -> str:
    return next(label for words, label in _ZH_TARGETS.items() if word in words.split("|"))


def _en_target(variant: str | None, language: str) -> str:
    if language.lower() == "english":
        return "en"
    return {"traditional": "zh-Hant", "simplified": "zh-Hans"}.get((variant or "").lower(), "zh")


def requested_language(question: str) -> str | None:
    """The reply language the question explicitly asks for: "en", "zh-Hant", "zh-Hans", "zh" (Chinese, script
    unspecified) or None. The first request in the text wins; "「蘋果」用英文怎麼說" is not a request."""
    found: list[tuple[int, str]] = []
    for match in _ZH_REQUEST.finditer(question or ""):
        found.append((match.start(), _zh_target(match.group(1))))
    for match in _EN_REQUEST.finditer(question or ""):
        groups = [g for g in match.groups()]
        for i in range(0, len(groups), 2):
            if groups[i + 1]:
                found.append((match.start(), _en_target(groups[i], groups[i + 1])))
                break
    return min(found)[1] if found else None


def expected_language(question: str) -> str:
    """The language a reply to `question` must be in: an explicit request, else the question's own script.

    An unspecified "Chinese" request in a Chinese question takes the question's script (Traditional stays strict).
    """
    requested = requested_language(question)
    own = detect_script(question)
    if requested == "zh" and own in ("zh-Hant", "zh-Hans"):
        return own
    return requested or own


def is_consistent(question: str, answer: str, expected: str | None = None) -> bool | None:
    """Whether `answer` is in the language the user needs (`expected`, else see `expected_language`).

    Returns None when that cannot be judged: the expected language is unknown ("other"/"empty" question), or the
    answer has fewer than MIN_LETTERS letters + Han characters (empty, "OK", "42"). An answer in another script
    ("other") is a miss. "zh" (undetermined Chinese) is compatible with both zh-Hant and zh-Hans, on either side.
    """
    expected = expected or expected_language(question)
    if expected not in ("en", *CHINESE):
        return None
    counts = script_counts(answer)
    if counts["han"] + counts["latin"] + counts["other"] < MIN_LETTERS:
        return None
    got = _script_from_counts(counts)
    if expected == "en" or got not in CHINESE:
        return got == expected
    return "zh" in (expected, got) or got == expected


def consistency_rate(pairs: Iterable[Sequence[str | None]]) -> dict:
    """Summary over (question, answer) or (question, answer, expected) items: {"rate", "checked", "misses",
    "skipped"}; rate is consistent/checked, None when nothing could be checked."""
    checked = misses = skipped = 0
    for item in pairs:
        question, answer = item[0], item[1]
        expected = item[2] if len(item) > 2 else None
        verdict = is_consistent(question or "", answer or "", expected)
        if verdict is None:
            skipped += 1
            continue
        checked += 1
        misses += not verdict
    rate = (checked - misses) / checked if checked else None
    return {"rate": rate, "checked": checked, "misses": misses, "skipped": skipped}
