"""Language consistency without a judge, on real Traditional Chinese (DRCD) and Korean (the Constitution and bills)
text and hand-made cases."""

from __future__ import annotations

import pytest

from bailong.evaluation.language import (
    SIMPLIFIED_ONLY,
    TRADITIONAL_ONLY,
    consistency_rate,
    detect_script,
    expected_language,
    is_consistent,
    requested_language,
)
from helpers import shared_file

# Traditional -> Simplified for common characters: a table of the test's own, independent of the module's sets.
_T2S = str.maketrans(
    "這們說時會來對發經過還沒樣為國學問見實現應氣長開關動東車書語話門間體電認讓給請謝個嗎進種從兩無機產業頭員麼與萬"
    "專樂買賣親億眾優傷傳論設訪證識訴詞譯試該讀誰調談課處備夠寶審導將層歲島師帶幫廣庫廢張彈強歸當錄態懷總戰擴執報擔"
    "擁擇換損數敵斷舊顯暫殺雜權條極構標樹橋夢檢歡歐漢灣滿滅燈靈熱愛獨環畫療積稱穩窮競筆節簡類練組細織終結絕統繼續維"
    "綜綠編網羅職聯腦腳舉藝藥獲慮雖補裝觀規視覽覺計訂討訓議記講許評誠詢諸貝負財責敗貨質購貴費貿資賽贊趕轉輪軟輕載較"
    "輸邊達遷運遠連遲選遞遺鄰釋鐘鋼錢鐵銀錯鍵鎮閉聞閱隊陽陰階際陸險隨隱難霧靜頂項順須顧預領頻題額風飛飯飲馬驗魚鳥雞"
    "黃齊龍匯壓廳歷廠縣參雙變號聽啟響團園圍圖圓場壞塊堅聲奪獎寬爾盡屬幣彎憂戲搶揮攜楊樓橫毀濕點煙燒猶貓鹽監蓋盤礦碼"
    "確禮離簽糧緊紅約級紀純紙線紹絡緩縮習聰膚膽營藍觸訊誕諾謀謠謹賢賬貪貧貫貼貸賀賞賴贈趙趨躍蹤輝辭邁違銅鋪鏈銷鎖鏡"
    "閃鬧閣陣陳韓頁頓顆顏飄飽飾館驅駛騎騙鮮鳴齒齡龜亞倉儀偵側債傾儲蘭興養獸冊寫軍農決況凍淨涼減鳳擊劉則剛創別劑劍劇"
    "辦務勸勢區醫華協單盧衛卻厲敘嚇吳嗚喚噴囑聖牆壯夾奧娛賓壽嘗屆豈嶺廟棄徑憐惱悅懼慘擾撫擬攔撥搖撐斬晉櫃欄滬潑瀏潤"
    "濾濫濱爛獄豬瑪盜磚稅籃纖綱納縱紛紡紐繞繪緒繩縫繳義恥腎脹膠脈臉艙榮蓮虛蝦鄉亂爭虧偽僑償兒湊勵勁勞臥廚疊詠墊誇嬌"
    "褲譽襪鄧鑰錦闖騷鴨鷹後裡於隻臺雲麵範製幹餘衝複據築註係",
    "这们说时会来对发经过还没样为国学问见实现应气长开关动东车书语话门间体电认让给请谢个吗进种从两无机产业头员么与万"
    "专乐买卖亲亿众优伤传论设访证识诉词译试该读谁调谈课处备够宝审导将层岁岛师带帮广库废张弹强归当录态怀总战扩执报担"
    "拥择换损数敌断旧显暂杀杂权条极构标树桥梦检欢欧汉湾满灭灯灵热爱独环画疗积称稳穷竞笔节简类练组细织终结绝统继续维"
    "综绿编网罗职联脑脚举艺药获虑虽补装观规视览觉计订讨训议记讲许评诚询诸贝负财责败货质购贵费贸资赛赞赶转轮软轻载较"
    "输边达迁运远连迟选递遗邻释钟钢钱铁银错键镇闭闻阅队阳阴阶际陆险随隐难雾静顶项顺须顾预领频题额风飞饭饮马验鱼鸟鸡"
    "黄齐龙汇压厅历厂县参双变号听启响团园围图圆场坏块坚声夺奖宽尔尽属币弯忧戏抢挥携杨楼横毁湿点烟烧犹猫盐监盖盘矿码"
    "确礼离签粮紧红约级纪纯纸线绍络缓缩习聪肤胆营蓝触讯诞诺谋谣谨贤账贪贫贯贴贷贺赏赖赠赵趋跃踪辉辞迈违铜铺链销锁镜"
    "闪闹阁阵陈韩页顿颗颜飘饱饰馆驱驶骑骗鲜鸣齿龄龟亚仓仪侦侧债倾储兰兴养兽册写军农决况冻净凉减凤击刘则刚创别剂剑剧"
    "办务劝势区医华协单卢卫却厉叙吓吴呜唤喷嘱圣墙壮夹奥娱宾寿尝届岂岭庙弃径怜恼悦惧惨扰抚拟拦拨摇撑斩晋柜栏沪泼浏润"
    "滤滥滨烂狱猪玛盗砖税篮纤纲纳纵纷纺纽绕绘绪绳缝缴义耻肾胀胶脉脸舱荣莲虚虾乡乱争亏伪侨偿儿凑励劲劳卧厨叠咏垫夸娇"
    "裤誉袜邓钥锦闯骚鸭鹰后里于只台云面范制干余冲复据筑注系",
)

ENGLISH = (
    "Taiwan's highest mountain is Yushan, at 3,952 metres. The island sits on the Pacific Ring of Fire, so "
    "earthquakes are common, and most people live on the western plains."
)


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    path = shared_file("tc/drcd_dev_paragraphs.txt")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:40]


def test_character_sets_are_disjoint_and_sizable():
    assert not SIMPLIFIED_ONLY & TRADITIONAL_ONLY
    assert len(SIMPLIFIED_ONLY) >= 2000 and len(TRADITIONAL_ONLY) >= 2000  # OpenCC's complete tables
    assert {"龜", "鬱", "纖", "釁"} <= TRADITIONAL_ONLY and {"龟", "郁", "纤", "衅"} & SIMPLIFIED_ONLY
    assert not {"台", "里", "干", "只"} & SIMPLIFIED_ONLY  # they stand for several Traditional characters too


@pytest.fixture(scope="module")
def korean() -> list[str]:
    path = shared_file("ko/ko_law_paragraphs.txt")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_korean_paragraphs_are_korean(korean):
    text = [p for p in korean if sum("가" <= ch <= "힣" for ch in p) >= 10]  # not the rules, formulas, e-mails
    assert len(text) > 450
    assert [detect_script(p) for p in text] == ["ko"] * len(text)
    assert detect_script("6. 第44條第1項第7號의 사유로") == "ko"  # hanja among Hangul


def test_scripts_besides_chinese():
    assert detect_script("สวัสดีครับ วันนี้อากาศดีมาก") == "th"
    assert detect_script("नमस्ते, आप कैसे हैं? मैं ठीक हूँ।") == "hi"
    assert detect_script("مرحبا، كيف حالك اليوم؟") == "ar"
    assert detect_script("カタカナとひらがなと漢字で書いた日本語の文です。") == "ja"
    assert detect_script("대한민국은 민주공화국이다. 大韓民國") == "ko"


@pytest.mark.parametrize(
    "question, expected",
    [
        ("다음 문장을 영어로 번역해 주세요: 안녕하세요", "en"),
        ("한국어로 대답해 주세요. What is kimchi?", "ko"),
        ("Answer in Korean: what is the capital of Korea?", "ko"),
        ("Please reply in Japanese.", "ja"),
        ("請用韓文回答：首爾在哪裡？", "ko"),
        ("用日語寫一首短詩。", "ja"),
        ("Translate into Russian: good morning", "ru"),
        ("영어는 어려운 언어입니까?", None),
    ],
)
def test_requested_language_other_languages(question, expected):
    assert requested_language(question) == expected


def test_korean_answers(korean, paragraphs):
    ko_question = "대한민국 헌법 제1조는 무엇을 말합니까?"
    assert expected_language(ko_question) == "ko"
    assert is_consistent(ko_question, korean[2]) is True
    assert is_consistent(ko_question, ENGLISH) is False
    assert is_consistent(ko_question, paragraphs[0]) is False
    assert is_consistent("영어로 대답해 주세요: " + ko_question, ENGLISH) is True
    assert is_consistent("영어로 대답해 주세요: " + ko_question, korean[2]) is False
    assert is_consistent("請用韓文回答：首爾在哪裡？", korean[2]) is True
    assert is_consistent("Answer in Korean: what does Article 1 say?", korean[2]) is True
    assert is_consistent("What does Article 1 say?", korean[2]) is False
    summary = consistency_rate([(ko_question, k) for k in korean[:5]] + [(ko_question, ENGLISH)])
    assert summary["checked"] == 6 and summary["misses"] == 1


def test_drcd_paragraphs_are_traditional(paragraphs):
    assert [detect_script(p) for p in paragraphs] == ["zh-Hant"] * len(paragraphs)


def test_simplified_version_is_simplified(paragraphs):
    simplified = [p.translate(_T2S) for p in paragraphs]
    assert simplified != paragraphs
    assert [detect_script(p) for p in simplified] == ["zh-Hans"] * len(paragraphs)


def test_other_scripts():
    assert detect_script(ENGLISH) == "en"
    assert detect_script("") == "empty"
    assert detect_script("42 + 7 = 49!") == "empty"
    assert detect_script("こんにちは、お元気ですか。私は学生です。") == "ja"
    assert detect_script("Привет, как дела?") == "ru"
    assert detect_script("Γεια σου, τι κάνεις;") == "other"
    assert detect_script("好的，可以") == "zh"  # no Traditional- or Simplified-only character
    assert detect_script("The word 你好 means hello.") == "en"
    assert detect_script("請用 Python 的 requests 套件下載網頁。") == "zh-Hant"


def test_code_and_urls_are_ignored():
    code = "```python\nimport os\nprint(os.listdir('.'))\nfor name in names: print(name)\n```\n"
    assert detect_script(code + "這段程式會列出目前資料夾裡的檔案。") == "zh-Hant"
    linked = "參考 https://example.com/some/long/english/path/to/a/page 與 `some_function()` 的說明"
    assert detect_script(linked) == "zh-Hant"


@pytest.mark.parametrize(
    "question, expected",
    [
        ("請用英文回答：台灣最高的山是哪一座？", "en"),
        ("用英語回答這個問題。", "en"),
        ("把這句話翻譯成英文：我今天很開心。", "en"),
        ("What is a black hole? Answer in English.", "en"),
        ("Answer in Traditional Chinese: what is bubble tea?", "zh-Hant"),
        ("請用繁體中文說明光合作用。", "zh-Hant"),
        ("请用簡體中文回答。", "zh-Hans"),
        ("Please reply in Simplified Chinese.", "zh-Hans"),
        ("Translate into Chinese: good morning", "zh"),
        ("「蘋果」用英文怎麼說？", None),
        ("繁體中文和簡體中文有什麼差別？", None),
        ("Why is the sky blue?", None),
        ("What does 'hello' mean in English?", None),
    ],
)
def test_requested_language(question, expected):
    assert requested_language(question) == expected


def test_expected_language_keeps_traditional_for_a_plain_chinese_request():
    assert expected_language("請以中文回答：什麼是颱風？") == "zh-Hant"
    assert expected_language("Translate into Chinese: good morning") == "zh"
    assert expected_language("為什麼天空是藍色的？") == "zh-Hant"


def test_is_consistent(paragraphs):
    tc_question = "台灣最高的山是哪一座？"
    tc_answer = paragraphs[0]
    assert is_consistent(tc_question, tc_answer) is True
    assert is_consistent(tc_question, tc_answer.translate(_T2S)) is False  # Simplified reply to a TC question
    assert is_consistent(tc_question, ENGLISH) is False
    assert is_consistent("請用英文回答：" + tc_question, ENGLISH) is True
    assert is_consistent("Where is Taiwan's highest mountain?", ENGLISH) is True
    assert is_consistent("Where is Taiwan's highest mountain?", tc_answer) is False
    assert is_consistent(tc_question, "好的，可以的") is True  # undetermined Chinese fits a TC question
    assert is_consistent(tc_question, "こんにちは、お元気ですか。") is False
    assert is_consistent(tc_question, "") is None
    assert is_consistent(tc_question, "OK") is None
    assert is_consistent("Γεια σου, τι κάνεις;", ENGLISH) is None  # the question's language is unknown
    assert is_consistent("anything", tc_answer.translate(_T2S), expected="zh") is True
    assert is_consistent("anything", tc_answer.translate(_T2S), expected="zh-Hans") is True
    assert is_consistent("anything", tc_answer, expected="zh-Hans") is False


def test_consistency_rate(paragraphs):
    tc_question = "請簡單介紹這段文字。"
    pairs = [(tc_question, p) for p in paragraphs[:3]] + [
        (tc_question, ENGLISH),
        (tc_question, ""),
        ("Summarise this.", ENGLISH, "en"),
    ]
    summary = consistency_rate(pairs)
    assert summary == {"rate": 4 / 5, "checked": 5, "misses": 1, "skipped": 1}
    assert consistency_rate([])["rate"] is None
